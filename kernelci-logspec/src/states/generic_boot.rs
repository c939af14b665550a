//! `generic_boot.generic_boot`: finds the hand-over from the bootloader to the kernel.

use super::{Ctx, StateOutput};
use crate::LogspecError;
use crate::patterns::{Lazy, TS, constant};
use crate::source::{Source, complete_end};

/// Upstream's tags, or'ed; their dots are wildcards, as upstream writes them.
static HANDOVER: Lazy = Lazy::new(|| {
    constant(&format!(
        r"Starting kernel ...|jumping to kernel|Booting from ROM...|{TS} Booting Linux"
    ))
});

pub(crate) fn run(src: &mut dyn Source, ctx: &mut Ctx) -> Result<StateOutput, LogspecError> {
    let done = loop {
        let over = ctx.over_window(src);
        let text = src.avail();
        let end = if over {
            text.len()
        } else {
            complete_end(text, src.is_eof())
        };
        if let Some(m) = HANDOVER.find(&text[..end]) {
            src.consume(m.end());
            break true;
        }
        if src.is_eof() {
            src.consume(text.len());
            break false;
        }
        src.consume(end);
        src.fill()?;
    };
    Ok(StateOutput {
        keys: vec![("bootloader.done", done)],
        errors: Vec::new(),
        signature_fields: vec!["bootloader.done"],
        summary: Some(if done {
            "Bootloader stage done, jump to kernel"
        } else {
            "Bootloader stage failed, inconclusive or couldn't detect handover to kernel"
        }),
        match_end: None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn pattern_compiles() {
        let _ = &*super::HANDOVER;
    }
}
