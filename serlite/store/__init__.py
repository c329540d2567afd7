"""Persistent stores: the location table (usrloc) and SER dbtext tables."""
