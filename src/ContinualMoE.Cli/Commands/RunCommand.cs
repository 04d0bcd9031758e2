using System.CommandLine;

namespace ContinualMoE.Cli.Commands;

/// <summary>
/// <c>continual-moe run</c>: one continual-learning experiment end to end. With no arguments it runs the embedded
/// default (generated benchmark, cached pretrained small ViT, SMoPE).
/// </summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var runOptions = new RunOptions();
        var output = new Option<string?>("--output", "-o") { Description = "run folder (default: runs/<method>-<dataset>-<time>)" };
        var force = new Option<bool>("--force") { Description = "replace the results of a previous run in the output folder" };
        var resume = new Option<string?>("--resume") { Description = "continue the interrupted run in this folder" };
        var command = new Command("run", "run a continual-learning experiment (no arguments: the embedded default)");
        runOptions.AddTo(command);
        command.Options.Add(output);
        command.Options.Add(force);
        command.Options.Add(resume);
        command.SetAction((parse, cancellation) =>
        {
            if (parse.GetValue(resume) is { } resumeFolder)
                return Task.FromResult(RunSession.Resume(resumeFolder, parse.GetValue(runOptions.ConfigFile)?.FullName, runOptions.Overrides(parse), cancellation));
            var config = runOptions.Resolve(parse);
            var folder = parse.GetValue(output) ?? Path.Combine("runs", $"{config.Method}-{config.Dataset}-{DateTime.Now:yyyyMMdd-HHmmss}");
            return Task.FromResult(RunSession.Start(config, folder, parse.GetValue(force), cancellation));
        });
        return command;
    }
}
