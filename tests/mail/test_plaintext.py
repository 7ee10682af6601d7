"""The plain-text part: prose a person can read, with every link kept as a reference."""

from __future__ import annotations

import pytest

from notifier.mail.plaintext import to_text


def mjml(body: str) -> str:
    return (
        "<mjml><mj-head><mj-attributes><mj-table font-size='15px' /><mj-text color='#111' />"
        "</mj-attributes><mj-style>a { color: red; }</mj-style><mj-title>Title</mj-title>"
        f"</mj-head><mj-body><mj-section><mj-column>{body}</mj-column></mj-section></mj-body></mjml>"
    )


def test_blocks_are_paragraphs_and_the_head_is_left_out() -> None:
    text = to_text(mjml("<mj-text>Hello  <b>there</b>,</mj-text><mj-text><p>Second</p></mj-text>"))
    assert text == "Hello there,\n\nSecond\n"


def test_links_become_numbered_references_listed_once_at_the_end() -> None:
    text = to_text(
        mjml(
            '<mj-text><a href="https://a.example/x">Shop</a> and '
            '<a href="https://a.example/x">again</a></mj-text>'
            '<mj-button href="https://b.example/unsubscribe?id=1&amp;t=2">Unsubscribe</mj-button>'
        )
    )
    assert text == (
        "Shop [1] and again [1]\n\nUnsubscribe [2]\n\n"
        "[1] https://a.example/x\n[2] https://b.example/unsubscribe?id=1&t=2\n"
    )


@pytest.mark.parametrize(
    "link",
    [
        '<a href="mailto:help@shop.example">help@shop.example</a>',
        '<a href="#top">help@shop.example</a>',
        "<a>help@shop.example</a>",
    ],
)
def test_a_link_that_shows_its_own_address_needs_no_reference(link: str) -> None:
    assert to_text(mjml(f"<mj-text>Mail {link}</mj-text>")) == "Mail help@shop.example\n"


def test_line_breaks_rows_and_cells_keep_their_shape() -> None:
    text = to_text(
        mjml(
            "<mj-text>Jan<br />Dorpsstraat 1<br><br>Utrecht</mj-text>"
            "<mj-table><tr><th>Product</th><th>Qty</th></tr>"
            "<tr><td><span>No. 1</span><br/><strong>Brake pads</strong></td>"
            "<td>2&nbsp;pcs</td></tr></mj-table>"
        )
    )
    # Issue 22: table cells in aligned columns, figures right-aligned beside a cell's last line.
    assert text == "Jan\nDorpsstraat 1\n\nUtrecht\n\nProduct       Qty\nNo. 1\nBrake pads  2 pcs\n"


def test_prose_is_wrapped_at_78_and_links_stay_whole() -> None:
    long_url = "https://shop.example/" + "x" * 90
    words = "Remblokken en remschijven voor de vooras, " * 6
    text = to_text(
        mjml(
            f"<mj-text>{words}</mj-text><mj-text><ul><li>{words}</li></ul></mj-text>"
            f'<mj-text><a href="{long_url}">Bekijk</a> of kijk op {long_url} zelf</mj-text>'
        )
    )
    lines = text.splitlines()
    assert all(len(line) <= 78 for line in lines if long_url not in line)
    assert " ".join(" ".join(lines[:4]).split()) == " ".join(words.split())
    assert lines[4] == "" and lines[5].startswith("- ") and lines[6].startswith("  ")
    assert long_url in lines  # on a line of its own, unbroken, in the prose
    assert f"[1]\n{long_url}" in text  # and in the references
    assert text.count(long_url) == 2


def test_table_rows_align_and_a_long_first_cell_wraps_in_its_column() -> None:
    name = "Ruitenwisserset Bosch Aerotwin 600/450 mm " * 3
    text = to_text(
        mjml(
            "<mj-table><tr><th>Product</th><th>Amount</th></tr>"
            f"<tr><td>{name}<br/>2 \u00d7 € 34,95</td><td>€ 69,90</td></tr>"
            "<tr><td>Total</td><td>€ 1.069,90</td></tr></mj-table>"
        )
    )
    lines = text.splitlines()
    assert all(len(line) <= 78 for line in lines)
    amounts = [line for line in lines if line.endswith(("€ 69,90", "€ 1.069,90", "Amount"))]
    assert len(amounts) == 3 and len({len(line) for line in amounts}) == 1  # right-aligned
    assert amounts[1].startswith("2 \u00d7 € 34,95 ")  # beside the cell's last line
    assert " ".join(" ".join(lines[1:-2]).split()) == " ".join(name.split())


def test_images_are_their_alt_text_and_hidden_content_is_left_out() -> None:
    text = to_text(
        '<mjml><mj-body><mj-raw><div style="display: none; font-size:1px">Preheader</div></mj-raw>'
        '<mj-section><mj-column><mj-image src="x.png" alt="Winter tyres" />'
        '<mj-text>After the image <img src="y.png"></mj-text></mj-column></mj-section>'
        "</mj-body></mjml>"
    )
    assert text == "Winter tyres\n\nAfter the image\n"


def test_lists_scripts_and_entities() -> None:
    text = to_text(
        mjml(
            "<mj-text><ul><li>One &amp; two</li><li>3 &lt; 4</li></ul>"
            "<script>alert(1)</script><style>p{}</style>Done</mj-text>"
        )
    )
    assert text == "- One & two\n- 3 < 4\n\nDone\n"


def test_an_empty_document_is_an_empty_line() -> None:
    assert to_text("") == "\n"
    assert to_text(mjml("")) == "\n"


def test_control_characters_in_the_text_cannot_pose_as_line_breaks() -> None:
    assert to_text(mjml("<mj-text>one\x00\x01\x02two</mj-text>")) == "onetwo\n"
