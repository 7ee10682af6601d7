() => {
  // Evaluated by Playwright (tests/browser.py: LAYOUT_PROBLEMS); returns a list of sentences.
  //
  // What a reader sees as broken at this width: anything wider than the window, and
  // dangling lines (an item of a "a · b · c" run split over two lines, or a line
  // that starts with its separator). Items are the text between separators, line
  // breaks (<br>, or a newline in preformatted text) and block boundaries; one wider than the box it sits in (its block, or an
  // inline-block such as a button) may wrap.
  const problems = [];
  const width = window.innerWidth;
  const root = document.documentElement;
  if (root.scrollWidth > width) {
    problems.push(`the page is ${root.scrollWidth} px wide in a ${width} px window`);
  }
  const wide = [...document.body.querySelectorAll("*")].filter((el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && (box.right > width + 0.5 || box.left < -0.5);
  });
  for (const el of wide) {
    if (!wide.includes(el.parentElement)) {
      const box = el.getBoundingClientRect();
      problems.push(`<${el.tagName.toLowerCase()}> spans ${Math.round(box.left)}…${Math.round(box.right)} px: ${el.textContent.trim().slice(0, 60)}`);
    }
  }

  const blockOf = (node) => {
    let el = node.parentElement;
    while (el && getComputedStyle(el).display.startsWith("inline")) el = el.parentElement;
    return el;
  };
  const boxOf = (node) => {
    let el = node.parentElement;
    while (el && getComputedStyle(el).display === "inline") el = el.parentElement;
    return el;
  };
  const charRects = (node, at) => {
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + 1);
    return [...range.getClientRects()].filter((r) => r.width > 0 && r.height > 0);
  };
  const SEPARATOR = /[·|]/;
  const segments = [];
  let current = null;
  let block = null;
  let previous = null;  // the last visible character: its block and its box
  const walker = document.createTreeWalker(
    document.body, NodeFilter.SHOW_TEXT | NodeFilter.SHOW_ELEMENT
  );
  const close = () => { if (current && current.chars.length) segments.push(current); current = null; };
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.nodeType === Node.ELEMENT_NODE) {
      if (node.tagName === "BR") close();
      continue;
    }
    const here = blockOf(node);
    if (here !== block) { close(); block = here; }
    if (!here || here.clientWidth === 0) continue;
    const text = node.textContent;
    // In preformatted text (a mail's plain part) a newline is a line break, like <br>.
    const keepsNewlines = !/^(normal|nowrap)$/.test(getComputedStyle(node.parentElement).whiteSpace);
    for (let i = 0; i < text.length; i++) {
      if (text[i] === "\n" && keepsNewlines) {
        close();
        continue;
      }
      const rects = charRects(node, i);
      if (/\s/.test(text[i])) {
        if (current && rects.length) current.spaces += rects[0].width;
        if (current && !current.text.endsWith(" ")) current.text += " ";
        continue;
      }
      if (!rects.length) continue;
      if (SEPARATOR.test(text[i])) {
        if (previous && previous.block === here && rects[0].top > previous.rect.bottom - 1) {
          problems.push(`a line starts with its separator: "${text.slice(i, i + 40).trim()}"`);
        }
        close();
      } else {
        if (!current) current = { box: boxOf(node), chars: [], spaces: 0, text: "" };
        current.chars.push(rects[0]);
      }
      if (current) current.text += text[i];
      previous = { block: here, rect: rects[0] };
    }
    if (current && !current.text.endsWith(" ")) current.text += " ";
  }
  close();
  for (const segment of segments) {
    const first = segment.chars[0];
    const lines = new Set(segment.chars.map((r) => Math.round((r.top - first.top) / first.height)));
    const length = segment.chars.reduce((sum, r) => sum + r.width, segment.spaces);
    const style = getComputedStyle(segment.box);
    const room = segment.box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    // A space where a line wraps has no width: one em of slack for it.
    if (lines.size > 1 && length + parseFloat(style.fontSize) < room) {
      problems.push(`"${segment.text.trim()}" is split over ${lines.size} lines though it fits in one`);
    }
  }
  return problems;
}
