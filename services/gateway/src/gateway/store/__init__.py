"""What lives in Redis: the guard that skips it while down, the caption cache, the rate-limit windows."""
