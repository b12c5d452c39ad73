"""Adapters between the outside world and the API: API Gateway events, the local server, Lambda emulation.

Also the embedded S3 + DynamoDB emulator (moto's server) and the JSON logs both adapters write. They
turn requests into `Request`s and `Response`s back into the wire; no registry logic lives here.
They may import the API (its service wiring) and the lifecycle schedules below it; only the CLI imports them.
"""
