"""The divergence banner: where training blew up, how large gradients were, what helps."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout


class DivergenceBanner(QFrame):
    """Hidden until a run diverges; then a red box with the engine's report and buttons."""

    rollback_requested = Signal()  # back to the kept state before the blow-up
    lower_lr_requested = Signal()  # ... and divide the learning rate by 10
    keep_requested = Signal()  # continue from the last finite state

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("divergence_banner")
        self.setStyleSheet(
            "#divergence_banner { background: #fde8e8; border: 2px solid #d62728; "
            "border-radius: 6px; } QLabel { color: #5a0000; }"
        )
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold; font-size: 13pt;")
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.advice = QLabel()
        self.advice.setWordWrap(True)
        self.rollback_button = QPushButton("Roll back")
        self.rollback_button.clicked.connect(self.rollback_requested)
        self.lower_button = QPushButton("Roll back, learning rate ÷ 10")
        self.lower_button.clicked.connect(self.lower_lr_requested)
        self.keep_button = QPushButton("Keep the last finite state")
        self.keep_button.setToolTip("Go on from the step before the blow-up (its weights may "
                                    "already be huge: change a setting first)")
        self.keep_button.clicked.connect(self.keep_requested)
        text = QVBoxLayout()
        text.addWidget(self.title)
        text.addWidget(self.details)
        text.addWidget(self.advice)
        buttons = QVBoxLayout()
        buttons.addWidget(self.rollback_button)
        buttons.addWidget(self.lower_button)
        buttons.addWidget(self.keep_button)
        buttons.addStretch(1)
        row = QHBoxLayout(self)
        row.addLayout(text, 1)
        row.addLayout(buttons)
        self.hide()

    def show_divergence(self, divergence) -> None:
        d = divergence
        self.title.setText(f"Training diverged at step {d.step} ({d.what} in {d.layer_name})")
        lines = [d.message]
        if d.layer_grad_norms_before is not None and len(d.layer_grad_norms_before):
            norms = ", ".join(f"{v:.2g}" for v in d.layer_grad_norms_before)
            lines.append(f"Per-layer gradient norms at the last finite step: {norms}.")
        lines.append(f"Learning rate: {d.learning_rate:.3g}.")
        self.details.setText(" ".join(lines))
        self.advice.setText("What usually helps: " + " ".join(f"• {a}" for a in d.advice))
        self.rollback_button.setText(f"Roll back to step {d.rollback_step}")
        self.rollback_button.setToolTip(
            f"Step {d.rollback_step} is the newest kept state (states are kept every "
            "evaluation) before the loss started to blow up."
        )
        self.lower_button.setText(f"Roll back to step {d.rollback_step}, learning rate ÷ 10")
        self.keep_button.setText(f"Keep step {d.step - 1} (last finite state)")
        self.show()
