// SPDX-License-Identifier: MIT OR Apache-2.0

// The seed's experiment on Node.js (issue 20): a slab of SPIKE of LIMIT bytes on V8's heap,
// written, dropped, then the rest of LIMIT, written. Run it as memspike does:
//
//     memspike exec --limit 128MiB -- node --max-old-space-size=512 reference/javascript/spike.js 134217728 0.9
//
// The slab is arrays of doubles, 1 MiB each, so that it lives on V8's heap (a Buffer's bytes
// live outside it, where --max-old-space-size does not look). With an old space above the
// group's limit the kernel kills Node; with one below what the slab needs, V8 aborts with
// "JavaScript heap out of memory" itself.
'use strict';

const MIB = 1 << 20;
const limit = Number(process.argv[2] || 32 * MIB);
const spike = Number(process.argv[3] || 0.9);

/** Arrays of doubles holding n bytes in all, every element written. */
function fill(n) {
  const pieces = [];
  for (let left = n; left > 0; left -= MIB) {
    pieces.push(new Array(Math.ceil(Math.min(left, MIB) / 8)).fill(1.5));
  }
  return pieces;
}

let slab = fill(limit * spike);
console.log(`phase=spike bytes=${Math.floor(limit * spike)}`);
slab = null;
console.log('phase=release');
const rest = fill(limit * (1 - spike));
console.log(`phase=remainder bytes=${Math.floor(limit * (1 - spike))} pieces=${rest.length}`);
console.log('phase=done');
