"""Draw the application icon (resources/icons/gradient-lab.png, 256x256) with Qt, offscreen.

A falling loss curve on a blue-to-teal gradient. Run it again only to change the icon; the PNG
is committed. `python packaging/make_icon.py [OUT.png]`
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPointF, QRectF, Qt  # noqa: E402
from PySide6.QtGui import (  # noqa: E402
    QBrush,
    QColor,
    QGuiApplication,
    QImage,
    QLinearGradient,
    QPainter,
    QPainterPath,
    QPen,
)

SIZE = 256
OUT = Path(__file__).resolve().parents[1] / "resources" / "icons" / "gradient-lab.png"


def draw(size: int = SIZE) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = size / 256.0
    bg = QLinearGradient(0, 0, size, size)
    bg.setColorAt(0.0, QColor("#1f4e9c"))
    bg.setColorAt(1.0, QColor("#16a39a"))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(bg))
    p.drawRoundedRect(QRectF(8 * s, 8 * s, 240 * s, 240 * s), 44 * s, 44 * s)
    # axes
    p.setPen(QPen(QColor(255, 255, 255, 150), 8 * s, Qt.PenStyle.SolidLine,
                  Qt.PenCapStyle.RoundCap))
    p.drawLine(QPointF(52 * s, 44 * s), QPointF(52 * s, 204 * s))
    p.drawLine(QPointF(52 * s, 204 * s), QPointF(212 * s, 204 * s))
    # a falling loss curve, a little noisy, like a real run
    path = QPainterPath()
    for i in range(61):
        t = i / 60
        loss = math.exp(-4.0 * t) + 0.05 * math.sin(23 * t) * math.exp(-2 * t)
        pt = QPointF((66 + 138 * t) * s, (186 - 130 * loss) * s)
        path.moveTo(pt) if i == 0 else path.lineTo(pt)
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.setPen(QPen(QColor("#ffd54a"), 14 * s, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                  Qt.PenJoinStyle.RoundJoin))
    p.drawPath(path)
    p.end()
    return image


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    _app = QGuiApplication(sys.argv[:1])
    if not draw().save(str(out)):
        print(f"error: could not write {out}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
