using System.CommandLine;
using ContinualMoE.Methods;
using Spectre.Console;

namespace ContinualMoE.Cli.Commands;

/// <summary><c>continual-moe methods</c>: the available methods.</summary>
internal static class MethodsCommand
{
    public static Command Create()
    {
        var command = new Command("methods", "list the available continual-learning methods");
        command.SetAction(_ =>
        {
            var table = new Table().AddColumns("method", "what it is");
            foreach (var name in MethodRegistry.Names) table.AddRow(name, Markup.Escape(MethodRegistry.Summary(name)));
            AnsiConsole.Write(table);
            return 0;
        });
        return command;
    }
}
