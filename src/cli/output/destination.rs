//! Where a command's `-o FILE` writes: that file, or standard output without `-o` or with
//! `-o -` (the spelling every Unix tool takes for it), never a file named `-`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Writes `bytes` to `path`, or to standard output when there is no path or it is `-`.
/// Returns the file written, if any (a command may say where the bytes went).
pub(crate) fn write_output<'p>(
    path: Option<&'p Path>,
    bytes: &[u8],
) -> anyhow::Result<Option<&'p Path>> {
    match path.filter(|path| path.as_os_str() != "-") {
        Some(path) => {
            std::fs::write(path, bytes)
                .with_context(|| format!("could not write {}", path.display()))?;
            Ok(Some(path))
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()?;
            Ok(None)
        }
    }
}
