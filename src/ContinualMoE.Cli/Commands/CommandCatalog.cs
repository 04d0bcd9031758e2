using System.CommandLine;

namespace ContinualMoE.Cli.Commands;

/// <summary>Subcommands beyond the benchmark, in the order they appear in --help.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> Extra() => [RunCommand.Create(), CompareCommand.Create(), GridCommand.Create(), SweepCommand.Create(), SweepCommand.CreateTask(), ReportCommand.Create(), PretrainCommand.Create(), MethodsCommand.Create(), LanguageModelCommand.Create(), .. ModelCommands.Create(), ServeCommand.Create(), LoadTestCommand.Create()];
}
