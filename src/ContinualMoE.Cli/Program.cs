using System.CommandLine;
using ContinualMoE;
using ContinualMoE.Cli.Commands;
using Spectre.Console;

// continual-moe: the command-line front end. The library does the work; this program owns printing, progress and files.
// Piped output (CI logs, files) has no terminal width; use a wide one so tables stay readable.
if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 200;

var root = new RootCommand("ContinualMoE: continual learning for pretrained transformers with sparse mixtures of experts");
root.Subcommands.Add(BenchCommand.Create());
foreach (var command in CommandCatalog.Extra()) root.Subcommands.Add(command);

try
{
    // Our own handler below prints user errors as one line; System.CommandLine's would print a stack trace.
    return await root.Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (ContinualMoEException e)
{
    AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
    return 1;
}
