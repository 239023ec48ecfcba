try:
    from magneton.cli import entry
except KeyboardInterrupt:  # Ctrl-C while Python imports Magneton itself
    raise SystemExit(130) from None

entry()
