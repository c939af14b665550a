//! Parser names and their state chains (upstream `parser_defs.yaml`, version 0.0.1).

use crate::LogspecError;

/// A log parser, as named in upstream's parser definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parser {
    /// `kbuild`: a kernel build log (state `kbuild.kbuild_start`).
    Kbuild,
    /// `generic_linux_boot`: bootloader then kernel boot up to the `/ #` prompt.
    GenericLinuxBoot,
    /// `test_baseline`: a boot followed by the KernelCI "baseline" test.
    TestBaseline,
    /// `test_kselftest`: a boot followed by a kselftest run.
    TestKselftest,
}

/// Parser names that upstream defines but whose states are not documented well enough here
/// to be reproduced exactly.
const NOT_IMPLEMENTED: [&str; 2] = ["chromebook_single_boot", "chromebook_2stage_boot"];

impl Parser {
    /// Every implemented parser.
    pub const ALL: [Parser; 4] = [
        Parser::Kbuild,
        Parser::GenericLinuxBoot,
        Parser::TestBaseline,
        Parser::TestKselftest,
    ];

    /// The parser for an upstream parser name. Unknown names give upstream's message
    /// (`Definition of parser <name> not found.`); the two Chromebook parsers give
    /// [`LogspecError::ParserNotImplemented`].
    pub fn from_name(name: &str) -> Result<Parser, LogspecError> {
        if let Some(parser) = Parser::ALL.into_iter().find(|p| p.name() == name) {
            return Ok(parser);
        }
        if NOT_IMPLEMENTED.contains(&name) {
            return Err(LogspecError::ParserNotImplemented(name.to_string()));
        }
        Err(LogspecError::UnknownParser(name.to_string()))
    }

    /// The upstream name of this parser.
    pub fn name(self) -> &'static str {
        match self {
            Parser::Kbuild => "kbuild",
            Parser::GenericLinuxBoot => "generic_linux_boot",
            Parser::TestBaseline => "test_baseline",
            Parser::TestKselftest => "test_kselftest",
        }
    }

    /// True for the parsers that read a boot log (every parser but `kbuild`).
    pub fn is_boot(self) -> bool {
        self != Parser::Kbuild
    }

    pub(crate) fn start_state(self) -> StateId {
        match self {
            Parser::Kbuild => StateId::KbuildStart,
            _ => StateId::GenericBoot,
        }
    }

    /// The next state after `state`, given the data gathered so far (upstream transition
    /// functions `linux.linux_start_detected` and `linux.linux_prompt_detected`).
    pub(crate) fn next_state(self, state: StateId, flag: impl Fn(&str) -> bool) -> Option<StateId> {
        match (self, state) {
            (Parser::Kbuild, _) => None,
            (_, StateId::GenericBoot) if flag("bootloader.done") => Some(StateId::KernelLoad),
            (Parser::TestBaseline, StateId::KernelLoad) if flag("linux.boot.prompt") => {
                Some(StateId::TestBaseline)
            }
            (Parser::TestKselftest, StateId::KernelLoad) if flag("linux.boot.prompt") => {
                Some(StateId::TestKselftest)
            }
            _ => None,
        }
    }
}

impl std::str::FromStr for Parser {
    type Err = LogspecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Parser::from_name(s)
    }
}

impl std::fmt::Display for Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The states of the upstream finite state machines that the implemented parsers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateId {
    KbuildStart,
    GenericBoot,
    KernelLoad,
    TestBaseline,
    TestKselftest,
}
