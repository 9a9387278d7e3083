// Supervisor dashboard — chatsvc: not built yet.
