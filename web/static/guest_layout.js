/* telecentre guest page: the layout of the call and who is speaking, as pure rules
   (no DOM, no clock: the page passes sizes and times in). guest.js applies them.

   - Grid (nobody shares): n sites in the cols x rows grid that gives each 16:9
     picture the largest area, ties to fewer rows: the room screens' rule
     (room_agents/layout.py grid_shape), here with the gap between tiles and what
     each tile adds around its picture (extraW, extraH: its padding, its name and
     state).
   - Content: the shared content large over a strip of the sites, which takes
     STRIP_FRACTION of the stage's height (as on the room screens), its pictures in
     one row as large as fits.
   - Speaker: the site whose received audio is loud (RMS at least SPEAK_ON of full
     scale) for ATTACK_MS becomes the speaker once the current one has been quiet
     (below SPEAK_OFF) for HANDOVER_MS; a speaker quiet for HOLD_MS is no longer
     highlighted. Between SPEAK_OFF and SPEAK_ON a site keeps what it was, so a
     voice near the threshold does not flicker.

   window.telecentreLayout = {ASPECT, STRIP_FRACTION, gridShape, gridPlan, stripPlan,
   speakerStep, SPEAK_ON, SPEAK_OFF, ATTACK_MS, HANDOVER_MS, HOLD_MS}.
*/
(() => {
  "use strict";

  const ASPECT = 16 / 9;
  const STRIP_FRACTION = 0.24;
  const SPEAK_ON = 0.02;   // about -34 dBFS: a voice at the microphone
  const SPEAK_OFF = 0.01;  // about -40 dBFS: a room's background is well below
  const ATTACK_MS = 300;
  const HANDOVER_MS = 600;
  const HOLD_MS = 1500;

  /** The picture's width in a cell of the grid. */
  function pictureWidth(cols, rows, width, height, aspect, gap, extraW, extraH) {
    const cellW = (width - gap * (cols - 1)) / cols - extraW;
    const cellH = (height - gap * (rows - 1)) / rows - extraH;
    return Math.max(0, Math.min(cellW, cellH * aspect));
  }

  /** [cols, rows] for n pictures of `aspect` in width x height: the largest picture
      area, ties to fewer rows (room_agents/layout.py grid_shape when gap and extras
      are 0). */
  function gridShape(n, width, height, { aspect = ASPECT, gap = 0, extraW = 0, extraH = 0 } = {}) {
    if (n <= 0) return [0, 0];
    let best = [n, 1];
    let bestArea = -1;
    for (let cols = 1; cols <= n; cols += 1) {
      const rows = Math.ceil(n / cols);
      const picW = pictureWidth(cols, rows, width, height, aspect, gap, extraW, extraH);
      const area = (picW * picW) / aspect;
      if (area > bestArea + 1e-9) {
        best = [cols, rows];
        bestArea = area;
      }
    }
    return best;
  }

  /** The grid for n tiles: {cols, rows, tileWidth}, tileWidth the picture's width (its
      height is tileWidth / aspect; the tile adds extraW and extraH around it). */
  function gridPlan(n, width, height, options = {}) {
    const { aspect = ASPECT, gap = 0, extraW = 0, extraH = 0 } = options;
    const [cols, rows] = gridShape(n, width, height, options);
    if (!cols) return { cols: 0, rows: 0, tileWidth: 0 };
    const tileWidth = Math.floor(pictureWidth(cols, rows, width, height, aspect, gap, extraW, extraH));
    return { cols, rows, tileWidth };
  }

  /** Content large over a strip of n tiles: {contentHeight, tileWidth} (the content
      tile's height above the strip, and each strip picture's width). */
  function stripPlan(n, width, height, { aspect = ASPECT, gap = 0, extraW = 0, extraH = 0 } = {}) {
    if (n <= 0) return { contentHeight: height, tileWidth: 0 };
    const stripHeight = Math.floor(height * STRIP_FRACTION);
    const tileWidth = Math.floor(pictureWidth(n, 1, width, stripHeight, aspect, gap, extraW, extraH));
    return { contentHeight: height - stripHeight - gap, tileWidth };
  }

  /** One step of the speaker rule. `state` is {speaker, sites: {id: {loudSince,
      quietSince}}} (start from {speaker: null, sites: {}}); `levels` maps each site
      heard to its RMS level (0..1) since the last step; `now` is in ms. Returns the
      next state; a site no longer in `levels` is forgotten. */
  function speakerStep(state, levels, now) {
    const sites = {};
    for (const [id, level] of Object.entries(levels)) {
      const before = state.sites[id] || { loudSince: null, quietSince: now };
      let { loudSince, quietSince } = before;
      if (level >= SPEAK_ON) {
        if (loudSince === null) loudSince = now;
        quietSince = null;
      } else if (level < SPEAK_OFF) {
        if (quietSince === null) quietSince = now;
        loudSince = null;
      }
      sites[id] = { loudSince, quietSince, level };
    }
    let speaker = state.speaker in sites ? state.speaker : null;
    const current = speaker && sites[speaker];
    if (current && current.quietSince !== null && now - current.quietSince >= HOLD_MS) speaker = null;
    const free = !speaker || (sites[speaker].quietSince !== null
      && now - sites[speaker].quietSince >= HANDOVER_MS);
    if (free) {
      const ready = Object.entries(sites)
        .filter(([id, s]) => id !== speaker && s.loudSince !== null && now - s.loudSince >= ATTACK_MS)
        .sort(([a, x], [b, y]) => y.level - x.level || (a < b ? -1 : 1));
      if (ready.length) speaker = ready[0][0];
    }
    return { speaker, sites };
  }

  Object.defineProperty(window, "telecentreLayout", {
    value: Object.freeze({
      ASPECT, STRIP_FRACTION, SPEAK_ON, SPEAK_OFF, ATTACK_MS, HANDOVER_MS, HOLD_MS,
      gridShape, gridPlan, stripPlan, speakerStep,
    }),
  });
})();
