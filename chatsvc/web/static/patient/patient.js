// Online consultation: not built yet.
