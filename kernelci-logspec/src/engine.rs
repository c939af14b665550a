//! Runs a parser's states one after the other over a source (upstream `parse_log`).

use crate::parser::StateId;
use crate::source::Source;
use crate::states::{self, Ctx, StateOutput};
use crate::{LogspecError, ParseResult, Parser};

/// Runs every state of `parser` that its transitions reach, merging their data as upstream's
/// `update_dict` does (state keys replaced, lists extended).
pub(crate) fn run(
    parser: Parser,
    src: &mut dyn Source,
    ctx: &mut Ctx,
) -> Result<ParseResult, LogspecError> {
    let mut result = ParseResult {
        parser,
        errors: Vec::new(),
        states: Vec::new(),
        match_end: 0,
        signature_fields: Vec::new(),
        states_summary: Vec::new(),
        signature: None,
        extra: Vec::new(),
        window_limited: false,
    };
    let mut state = Some(parser.start_state());
    while let Some(id) = state {
        let output = run_state(id, src, ctx)?;
        result.match_end = output.match_end.unwrap_or_else(|| src.consumed_chars());
        for (key, value) in output.keys {
            match result.states.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value,
                None => result.states.push((key.to_string(), value)),
            }
        }
        result.errors.extend(output.errors);
        result
            .signature_fields
            .extend(output.signature_fields.iter().map(|f| f.to_string()));
        result
            .states_summary
            .extend(output.summary.map(str::to_string));
        state = parser.next_state(id, |key| result.state(key) == Some(true));
    }
    result.generate_signature();
    result.window_limited = ctx.window_limited;
    Ok(result)
}

fn run_state(
    id: StateId,
    src: &mut dyn Source,
    ctx: &mut Ctx,
) -> Result<StateOutput, LogspecError> {
    match id {
        StateId::KbuildStart => states::kbuild::run(src, ctx),
        StateId::GenericBoot => states::generic_boot::run(src, ctx),
        StateId::KernelLoad => states::kernel_load::run(src, ctx),
        StateId::TestBaseline => states::test_baseline::run(src, ctx),
        StateId::TestKselftest => states::test_kselftest::run(src, ctx),
    }
}
