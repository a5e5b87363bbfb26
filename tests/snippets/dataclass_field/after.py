import dataclasses


@dataclasses.dataclass
class Config:
    host: str = "localhost"
    port: int = 8080
