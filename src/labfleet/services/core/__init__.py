"""What every capability uses: events, audit, alerts, device locks, tokens, statuses."""
