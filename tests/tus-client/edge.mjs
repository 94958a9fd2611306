// Cases where tus-js-client's view of an upload must match wharf's: an empty file,
// PATCH sent as POST with X-HTTP-Method-Override, and a name taken by another
// writer while the upload is under way (the other writer's file stays; the upload
// goes in beside it under a numbered name). Uses the client's default retry
// policy. Prints "success" or "error STATUS".
//
// Usage: node edge.mjs ENDPOINT MODE NAME [TAKEN_PATH]
//   MODE: empty | override | taken (TAKEN_PATH: where to write the other file, on
//   the creation's answer)
import { writeFileSync } from "node:fs";
import * as tus from "tus-js-client";

const [endpoint, mode, name, takenPath] = process.argv.slice(2);
const data = mode === "empty" ? Buffer.alloc(0) : Buffer.from("tus-js-client was here\n");

const upload = new tus.Upload(data, {
  endpoint,
  metadata: { filename: name, filetype: "text/plain" },
  overridePatchMethod: mode === "override",
  onAfterResponse(req, res) {
    if (mode === "taken" && req.getMethod() === "POST" && res.getStatus() === 201) {
      writeFileSync(takenPath, "another writer\n");
    }
  },
  onError(err) {
    const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
    console.log(`error ${status}`);
    process.exit(0);
  },
  onSuccess() {
    console.log("success");
    process.exit(0);
  },
});
upload.start();
