"""The headless front door both faces call: no textual, rich or torch here."""
