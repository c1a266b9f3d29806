"""The tokenizer worker process: ``python -m chinchilla.data.tokenize_worker`` (see ``token_cache.Workers``).

Reads one JSON task per line on stdin (a unit to tokenise), answers one JSON line on stdout per task.
"""

if __name__ == "__main__":
    from chinchilla.data.token_cache import _worker_main

    _worker_main()
