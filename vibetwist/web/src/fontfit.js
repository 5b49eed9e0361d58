// How small a read-only view's font gets so that a wide session fits a narrow
// window (the PTY keeps its size: read-only viewers never resize it).

// The smallest font a read-only view shrinks to before it pans sideways instead.
export const SMALLEST_FONT = 4;

// The font size, in steps of half a pixel and at least SMALLEST_FONT, that makes
// a terminal that is width px wide at font size font fit in room px (text width
// grows in proportion to the font size). font itself when it already fits.
export function fittingFont(font, width, room) {
  if (!(width > room) || !(room > 0)) return font;
  return Math.min(font, Math.max(SMALLEST_FONT, Math.floor((2 * font * room) / width) / 2));
}
