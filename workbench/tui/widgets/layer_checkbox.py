"""A checkbox whose mark is a character, not only a colour: readable with NO_COLOR."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox


class LayerCheckbox(Checkbox):
    @property
    def _button(self) -> Content:
        # Textual draws "X" in both states and tells them apart by colour alone.
        self.BUTTON_INNER = "X" if self.value else " "
        return super()._button
