#!/bin/sh
# Gradient Lab's launcher on the PATH; the program itself lives in /opt/gradient-lab.
exec /opt/gradient-lab/gradient-lab "$@"
