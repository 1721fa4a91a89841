"""LiteRT's metadata schema (metadata_schema.fbs) and its generated Python code, vendored
from the mediapipe wheel (Apache-2.0; see each file's header)."""
