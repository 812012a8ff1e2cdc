"""The token broker: owns every user's Zoho OAuth connection and hands out
fresh access tokens over gRPC. It alone ever sees refresh tokens."""
