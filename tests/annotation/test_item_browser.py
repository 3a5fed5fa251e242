"""Issue 13: the lead's item browser at /p/<slug>/items/ — filters, search, ?page_size=,
every text in its own lang and dir, an item's judgments by pseudonym and its history;
leads only. And evaluators are named by pseudonym on every lead page."""

from __future__ import annotations

from annotation.models import Item, ItemStatus, Selection
from annotation.queue import item_claim_next, judgment_submit
from tests.annotation.test_evaluator_pages import elements
from tests.base import ParityTestCase
from tests.factories import ItemFactory

ITEMS = "/p/mt-rating/items/"


class ItemBrowserTests(ParityTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.ar_item = ItemFactory(
            project=cls.project,
            language=cls.ar,
            external_id="udhr-ar",
            response="يولد جميع الناس أحرارًا",
            prompt="All human beings are born free",
            metadata={"prompt_language": "en"},
        )
        cls.de_item = ItemFactory(
            project=cls.project,
            language=cls.de,
            external_id="udhr-de",
            response="Alle Menschen sind frei",
            selection=Selection.RANDOM,
        )
        cls.zh_items = [
            ItemFactory(
                project=cls.project,
                language=cls.zh,
                external_id=f"zh-{n}",
                response=f"人人生而自由 {n}",
            )
            for n in range(5)
        ]
        Item.objects.filter(pk=cls.zh_items[0].pk).update(
            language_flagged=True, status=ItemStatus.POOL
        )

    def setUp(self) -> None:
        self.client.force_login(self.lead)

    def ids(self, response) -> list[str]:
        return [
            el["text"] for el in elements(response, tag="code") if el["attrs"].get("dir") == "ltr"
        ]

    def test_it_filters_by_language_status_selection_flag_and_search(self):
        self.assertEqual(self.ids(self.client.get(ITEMS + "?language=ar")), ["udhr-ar"])
        self.assertEqual(self.ids(self.client.get(ITEMS + "?status=pool")), ["zh-0"])
        self.assertEqual(self.ids(self.client.get(ITEMS + "?selection=random")), ["udhr-de"])
        self.assertEqual(self.ids(self.client.get(ITEMS + "?flag=language")), ["zh-0"])
        self.assertEqual(self.ids(self.client.get(ITEMS + "?q=Menschen")), ["udhr-de"])
        self.assertEqual(self.ids(self.client.get(ITEMS + "?q=udhr-a")), ["udhr-ar"])
        self.assertEqual(len(self.ids(self.client.get(ITEMS))), 7)

    def test_it_pages_by_page_size_and_keeps_the_filters_in_the_links(self):
        page = self.client.get(ITEMS + "?language=zh&page_size=2")
        self.assertEqual(len(self.ids(page)), 2)
        self.assertContains(page, "Page 1 of 3")
        self.assertContains(page, 'href="?language=zh&amp;page_size=2&amp;page=2"')

    def test_it_refuses_bad_filters_with_what_to_use(self):
        for query, message in (
            ("?page_size=0", "page_size: a whole number from 1 to 200."),
            ("?page_size=abc", "page_size: a whole number"),
            ("?status=lost", "status: choose one of pool, queued"),
            ("?language=fr", "fr is not a language of Mt Rating."),
        ):
            response = self.client.get(ITEMS + query)
            self.assertContains(response, message, status_code=400)

    def test_each_text_has_its_own_lang_and_dir(self):
        page = self.client.get(ITEMS + "?language=ar")
        arabic = [el for el in elements(page, cls="snippet") if "يولد" in el["text"]]
        self.assertEqual(
            [(el["attrs"]["lang"], el["attrs"]["dir"]) for el in arabic], [("ar", "rtl")]
        )
        prompt = [el for el in elements(page, cls="snippet") if "born free" in el["text"]]
        self.assertEqual(prompt[0]["attrs"]["lang"], "en")

    def test_an_item_shows_its_judgments_by_pseudonym_and_its_history(self):
        assignment = item_claim_next(evaluator=self.alice, project=self.project, language=self.de)
        judgment_submit(
            assignment=assignment, evaluator=self.alice, value={"score": 4, "comment": "Gut"}
        )
        page = self.client.get(f"{ITEMS}{assignment.item_id}/")
        self.assertEqual(page.status_code, 200)
        pseudonym = self.alice.evaluator_profile.pseudonym
        self.assertContains(
            page, f"<code>{pseudonym}</code>", count=2
        )  # the judgment, the assignment
        self.assertNotContains(page, "alice")
        self.assertContains(page, "Gut")
        self.assertContains(page, 'id="response" tabindex="0" role="region"')

    def test_only_leads_may_browse(self):
        self.client.force_login(self.alice)
        self.assertContains(
            self.client.get(ITEMS), "Only a lead of this project may do this.", status_code=403
        )
        self.assertEqual(self.client.get(f"{ITEMS}{self.de_item.pk}/").status_code, 403)
        self.client.force_login(self.lead)
        other = ItemFactory(external_id="elsewhere")
        self.assertEqual(self.client.get(f"{ITEMS}{other.pk}/").status_code, 404)


class PseudonymTests(ParityTestCase):
    def test_the_dashboard_names_evaluators_by_pseudonym(self):
        self.client.force_login(self.lead)
        page = self.client.get("/p/mt-rating/lead/")
        self.assertContains(page, self.alice.evaluator_profile.pseudonym)
        self.assertNotContains(page, ">alice<")
