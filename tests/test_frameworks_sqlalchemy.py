"""SQLAlchemy adapter against the real SQLAlchemy 2.x: a mapped class, its instances, bound methods and an open
engine are taken before each edit; methods, properties and hybrids follow in place with no second mapping, and a
schema change asks for a restart with nothing half-applied."""

from __future__ import annotations

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

MODELS = """\
from sqlalchemy import ForeignKey, String, create_engine
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

class Base(DeclarativeBase):
    pass

class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    posts: Mapped[list["Post"]] = relationship(back_populates="author")

    def greet(self):
        return "hi " + self.name

    @property
    def shout(self):
        return self.name.upper()

    @hybrid_property
    def tagged(self):
        return self.name + "?"

class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    author: Mapped[User] = relationship(back_populates="posts")

def helper():
    return 1

engine = create_engine("sqlite://")
Base.metadata.create_all(engine)
"""


def test_method_property_and_hybrid_edits_are_patched_with_no_second_mapping(modules):
    module = modules.load(MODELS)
    User, mapper, table = module.User, inspect(module.User), module.User.__table__
    mappers = len(module.Base.registry.mappers)
    with Session(module.engine) as session:
        session.add(User(name="ann"))
        session.commit()
    user = User(name="bob")
    greet = user.greet
    new = (MODELS.replace('"hi " + self.name', '"hello " + self.name')
           .replace("return self.name.upper()", "return self.name.upper() + '!'")
           .replace('return self.name + "?"', 'return self.name + "!"'))
    report = modules.edit(module, new)
    assert report.ok, report.error
    assert report.needs_restart is None
    assert module.User is User and inspect(User) is mapper and User.__table__ is table
    assert len(module.Base.registry.mappers) == mappers, "no second mapping"
    assert greet() == "hello bob" and user.shout == "BOB!" and user.tagged == "bob!"
    with Session(module.engine) as session:
        ann = session.scalars(select(User).where(User.name == "ann")).one()
        assert ann.greet() == "hello ann", "the engine and the data survived"
        assert session.scalars(select(User).where(User.tagged == "ann!")).all() == [ann]


def test_a_changed_column_asks_for_a_restart_and_nothing_of_the_class_is_applied(modules):
    module = modules.load(MODELS)
    User, mapper = module.User, inspect(module.User)
    user = User(name="cy")
    new = (MODELS.replace('name: Mapped[str] = mapped_column(String(30))',
                          'name: Mapped[str] = mapped_column(String(30))\n    email: Mapped[str] = mapped_column()')
           .replace('"hi " + self.name', '"hello " + self.name')
           .replace("def helper():\n    return 1", "def helper():\n    return 2"))
    report = modules.edit(module, new)
    assert report.ok, report.error
    assert "User" in report.needs_restart and "email" in report.needs_restart
    assert "restart" in report.needs_restart
    assert "email" not in User.__dict__ and "email" not in inspect(User).attrs
    assert inspect(User) is mapper
    assert user.greet() == "hi cy", "the class kept all its old members"
    assert module.helper() == 2, "the rest of the module was reloaded"
    with Session(module.engine) as session:
        session.add(User(name="dee"))
        session.commit()


def test_a_changed_relationship_or_table_name_asks_for_a_restart(modules):
    module = modules.load(MODELS)
    report = modules.edit(module, MODELS.replace('relationship(back_populates="author")',
                                                 'relationship(back_populates="author", lazy="selectin")'))
    assert report.ok, report.error
    assert report.needs_restart and "posts" in report.needs_restart
    module = modules.load(MODELS)
    report = modules.edit(module, MODELS.replace('__tablename__ = "posts"', '__tablename__ = "articles"'))
    assert report.needs_restart and "Post" in report.needs_restart and "__tablename__" in report.needs_restart
    assert module.Post.__table__.name == "posts"
