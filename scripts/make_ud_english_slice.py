"""Write the shipped slice of UD English EWT: the held-out documents of the training split, xz-compressed.

    python scripts/make_ud_english_slice.py ../shared/data/en_ewt-ud-train.conllu

Whole sentence blocks are copied verbatim (comments and all ten columns), in the treebank's order.
"""

import lzma
import sys
from pathlib import Path

from tl_neuronprobe.data.treebank import SLICE, document_of, document_part


def main(source: str) -> None:
    blocks, block = [], []
    for line in Path(source).read_text(encoding="utf-8").splitlines():
        if line.strip():
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    if block:
        blocks.append(block)
    keep = []
    for b in blocks:
        sent_id = next(x.split("=", 1)[1].strip() for x in b if x.startswith("# sent_id"))
        if document_part(document_of(sent_id)) == "heldout":
            if not any(x.startswith("# newdoc") for x in b) and (not keep or document_of(sent_id) != keep[-1][0]):
                b = [f"# newdoc id = {document_of(sent_id)}"] + b
            keep.append((document_of(sent_id), b))
    text = "\n\n".join("\n".join(b) for _, b in keep) + "\n\n"
    SLICE.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(SLICE, "wt", encoding="utf-8", preset=9) as fh:
        fh.write(text)
    docs = len({d for d, _ in keep})
    print(f"{SLICE}: {len(keep)} sentences from {docs} documents of {len(blocks)} sentences in {source}")


if __name__ == "__main__":
    main(sys.argv[1])
