"""``runtime bench``: this machine's figures (``figures``), and the same on an aged file
(``history``, which ``grow``s the file and measures ``runtime start`` ``processes``)."""
