"""Exit codes of `python -m producer_sim`, in a module of their own so the CLI and the commands both
import them without importing each other."""

EXIT_OK = 0          # done; every frame acknowledged (run), or --until reached (watch)
EXIT_LOST = 1        # frames lost (run) or fewer than --until frames seen (watch)
EXIT_BAD_INPUT = 2   # bad settings or image source
EXIT_KAFKA = 3       # Kafka unreachable or a topic missing
