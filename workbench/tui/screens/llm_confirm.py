"""Opt-in for LLM advice: the exact request that would go to Anthropic, shown before anything is
sent; only an explicit yes sends it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class LLMConfirmScreen(ModalScreen[bool]):
    CSS_PATH = "modals.tcss"
    BINDINGS = [
        Binding("y", "answer(True)", "Send", id="llm.send"),
        Binding("n,escape", "answer(False)", "Cancel", id="llm.cancel"),
    ]

    def __init__(self, request_text: str) -> None:
        super().__init__()
        self.request_text = request_text

    def compose(self) -> ComposeResult:
        with Vertical(id="llm-dialog", classes="dialog"):
            yield Static(Text("Send this to Anthropic? Nothing else leaves this machine; the "
                              "API key is read from ANTHROPIC_API_KEY and never stored.",
                              style="bold"), classes="dialog-title")
            with VerticalScroll(id="llm-request"):
                yield Static(Text(self.request_text))  # literal: no markup in payloads
            with Horizontal(classes="dialog-buttons"):
                yield Button("Send (y)", id="llm-send", variant="warning", compact=True)
                yield Button("Cancel (n)", id="llm-cancel", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#llm-cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "llm-send")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
