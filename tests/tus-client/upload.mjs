// Uploads a file to wharf with tus-js-client, cuts the connection part-way (an
// aborted request), then resumes from the offset the server reports, as a browser
// would after a network failure. Prints the offset it resumed from.
//
// Usage: node upload.mjs ENDPOINT FILE NAME
import { readFileSync } from "node:fs";
import * as tus from "tus-js-client";

const [endpoint, file, name] = process.argv.slice(2);
const data = readFileSync(file);
const cutAt = Math.floor(data.length / 3);

function run(options) {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(data, {
      retryDelays: null,
      metadata: { filename: name, filetype: "application/octet-stream" },
      ...options,
      onError: reject,
      onSuccess: () => resolve({ upload, done: true }),
    });
    upload.options.onProgress = (sent) => {
      if (options.cut && sent >= cutAt) {
        options.cut = false;
        upload.abort().then(() => resolve({ upload, done: false }), reject);
      }
    };
    upload.start();
  });
}

// In PATCH requests of 8 MiB, so that the cut always comes before the last one:
// one request of the whole file can be all written (and the upload done) before
// the abort takes effect.
const first = await run({ endpoint, cut: true, chunkSize: 8 * 1024 * 1024 });
if (first.done || !first.upload.url) {
  console.error("the first attempt was not cut short");
  process.exit(1);
}
let resumedFrom = -1;
const second = await run({
  uploadUrl: first.upload.url,
  onUploadUrlAvailable() {},
  onAfterResponse(req, res) {
    if (req.getMethod() === "HEAD") {
      resumedFrom = Number(res.getHeader("Upload-Offset"));
    }
  },
});
if (!second.done) {
  process.exit(1);
}
console.log(`resumed-from ${resumedFrom}`);
