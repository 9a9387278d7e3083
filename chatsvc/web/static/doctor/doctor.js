// Doctor console — chatsvc: not built yet.
