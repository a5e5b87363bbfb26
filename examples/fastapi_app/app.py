"""A small FastAPI service with SQLAlchemy and Pydantic, to edit while `hotswap run` serves it.

    cd examples/fastapi_app && hotswap run -m uvicorn app:app --port 8000

Edit a handler, a route's path, a Pydantic field, and save: the next request is served by the new code,
and the in-memory database and the visit counter are still there.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import StaticPool


class Base(DeclarativeBase):
    pass


class Todo(Base):
    __tablename__ = "todos"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))

    def describe(self) -> str:
        return f"#{self.id} {self.title}"


class TodoIn(BaseModel):
    title: str


class TodoOut(BaseModel):
    id: int
    title: str


# State that a restart would lose: an in-memory database and a counter.
engine = create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
Base.metadata.create_all(engine)
visits = {"count": 0}

app = FastAPI()


@app.get("/hello")
def hello() -> dict:
    visits["count"] += 1
    return {"message": "hello", "visits": visits["count"]}


@app.post("/todos", response_model=TodoOut)
def add_todo(todo: TodoIn) -> TodoOut:
    with Session(engine) as session:
        row = Todo(title=todo.title)
        session.add(row)
        session.commit()
        return TodoOut(id=row.id, title=row.title)


@app.get("/todos")
def list_todos() -> list:
    with Session(engine) as session:
        return [row.describe() for row in session.scalars(select(Todo).order_by(Todo.id))]


@app.get("/todos/{todo_id}", response_model=TodoOut)
def get_todo(todo_id: int) -> TodoOut:
    with Session(engine) as session:
        row = session.get(Todo, todo_id)
        if row is None:
            raise HTTPException(404, "no such todo")
        return TodoOut(id=row.id, title=row.title)
