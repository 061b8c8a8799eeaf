"""Exchange simulator: Binance spot REST (HMAC-signed) matching against the replayed market."""
