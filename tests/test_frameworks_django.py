"""Django adapter against the real Django: model classes patched in place (never registered twice), field changes
asking for a restart, and a URLconf edit served by the resolver taken before it."""

from __future__ import annotations

import django
import pytest
from django.conf import settings


@pytest.fixture(scope="module", autouse=True)
def configured():
    if not settings.configured:
        settings.configure(INSTALLED_APPS=[], DATABASES={}, ROOT_URLCONF=None, SECRET_KEY="test", USE_TZ=True)
        django.setup()


MODELS = """\
from django.db import models

class Book(models.Model):
    title = models.CharField(max_length=100)

    class Meta:
        app_label = "hotswap_{tag}"

    def label(self):
        return "book " + self.title
"""


def test_a_model_method_edit_is_patched_in_place_and_not_registered_again(modules):
    from django.apps import apps

    module = modules.load(MODELS.format(tag="a"))
    Book, meta = module.Book, module.Book._meta
    book = Book(title="x")
    label = book.label
    report = modules.edit(module, MODELS.format(tag="a").replace('"book " + self.title', '"BOOK " + self.title'))
    assert report.ok, report.error
    assert report.needs_restart is None
    assert module.Book is Book and Book._meta is meta
    assert apps.all_models["hotswap_a"] == {"book": Book}, "registered once, as the live class"
    assert label() == "BOOK x"


def test_a_field_change_asks_for_a_restart_and_nothing_of_the_model_is_applied(modules):
    module = modules.load(MODELS.format(tag="b"))
    Book = module.Book
    new = MODELS.format(tag="b").replace("    title = models.CharField(max_length=100)\n",
                                         "    title = models.CharField(max_length=100)\n"
                                         "    pages = models.IntegerField(default=0)\n")
    new = new.replace('"book " + self.title', '"BOOK " + self.title')
    report = modules.edit(module, new)
    assert report.ok, report.error
    assert "Book" in report.needs_restart and "pages" in report.needs_restart
    assert [f.name for f in Book._meta.get_fields()] == ["id", "title"]
    assert Book(title="y").label() == "book y", "the model kept all its old members"


def test_a_urlconf_edit_is_resolved_at_once(modules):
    from django.urls import resolve, set_urlconf
    from django.urls.exceptions import Resolver404

    urls = modules.load("from django.http import HttpResponse\nfrom django.urls import path\n\n"
                        "def view(request):\n    return HttpResponse('v')\n\n"
                        "urlpatterns = [path('old', view)]\n")
    set_urlconf(urls.__name__)
    try:
        assert resolve("/old").func is urls.view
        report = modules.edit(urls, "from django.http import HttpResponse\nfrom django.urls import path\n\n"
                                    "def view(request):\n    return HttpResponse('v')\n\n"
                                    "urlpatterns = [path('new', view)]\n")
        assert report.ok, report.error
        assert resolve("/new").func is urls.view
        with pytest.raises(Resolver404):
            resolve("/old")
    finally:
        set_urlconf(None)
