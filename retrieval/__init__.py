"""Retrieval: embedding with exported towers, exact top-k and ANN indexes.

What IndexBuilder, the evaluator, `mmse index`, `mmse evaluate` and the
server share to turn towers and a catalogue into ranked item ids:
`embedding` (towers -> vectors), `topk` (the one exact top-k) and `ann`
(ScaNN, FAISS and exact indexes, saved beside the `retrieval` model).
"""
