import dataclasses


@dataclasses.dataclass
class Config:
    host: str = "localhost"
