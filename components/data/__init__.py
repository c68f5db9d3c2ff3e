"""The bundled Boston Housing CSV, its sha256 and data card (package data)."""
