#!/usr/bin/env bash
# The main job: install, fine-tune the offline MiniLM-L6 on the built-in tweets dataset (fixed 6,000-tweet
# training subset, 2 epochs) and print the test metrics (full 3,722-tweet built-in test split).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. scripts/venv.sh
export HF_HUB_OFFLINE=1
bertcls train --config configs/train/minilm-tweets.yaml
