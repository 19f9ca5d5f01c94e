"""The web UI: server-rendered pages for care navigators (people and their journeys)
and data teams (the integration console), served by `journey serve` under /ui."""
