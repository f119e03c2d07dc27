"""Download the EfficientNet-B0 ImageNet weights into the image, checked, at a fixed path.

The file is timm's own EfficientNet-B0 checkpoint (``efficientnet_b0_ra``, 77.7% ImageNet top-1);
its name carries the first 8 hex digits of its sha256, which torch.hub checks while downloading
(the convention of torch.hub and timm's release files). The full sha256 is written beside the file
(``<name>.sha256``): put it under ``model.weights_sha256`` to have every run check it again.
Usage: python fetch_weights.py <folder>
"""

import hashlib
import sys
from pathlib import Path

from torch.hub import download_url_to_file

URL = "https://github.com/huggingface/pytorch-image-models/releases/download/v0.1-weights/efficientnet_b0_ra-3dd342df.pth"
HASH_PREFIX = "3dd342df"


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / URL.rsplit("/", 1)[-1]
    download_url_to_file(URL, str(target), hash_prefix=HASH_PREFIX, progress=False)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    target.with_name(target.name + ".sha256").write_text(f"{digest}  {target.name}\n")
    print(f"{target}: sha256 {digest}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
