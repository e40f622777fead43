"""The Textual app: routing (app.py), one screen per module (screens/), widgets."""
