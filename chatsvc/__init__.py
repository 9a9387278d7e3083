"""chatsvc: real-time chat for doctor-patient online consultation."""
