using System.Diagnostics;
using ContinualMoE.Experiments;
using Spectre.Console;

namespace ContinualMoE.Cli.Commands;

/// <summary>Turns a config's backbone_weights into a file: a given path, nothing (random init), or the cached default
/// backbone, pretrained here on first use.</summary>
internal static class BackboneWeights
{
    public static string? Resolve(RunConfig config, CancellationToken cancellation)
    {
        if (config.BackboneWeights is null) return null;
        if (config.BackboneWeights != RunConfig.PretrainedDefault)
        {
            if (!File.Exists(config.BackboneWeights) && !Directory.Exists(config.BackboneWeights))
                throw ContinualMoEException.ForFile(config.BackboneWeights, "backbone weights file not found");
            return config.BackboneWeights;
        }
        var path = DefaultBackbone.CachePath(config.Backbone);
        if (File.Exists(path)) return path;
        AnsiConsole.MarkupLine($"No cached default backbone for {Markup.Escape(config.Backbone)}: pretraining it once on the generated upstream classes " +
                               $"({DefaultBackbone.UpstreamClasses} classes, disjoint from the continual ones) into [bold]{Markup.Escape(path)}[/].");
        PretrainInOwnProcess(config, cancellation);
        if (!File.Exists(path)) throw ContinualMoEException.ForFile(path, "pretraining the default backbone ended without writing it");
        return path;
    }

    /// <summary>
    /// <c>continual-moe pretrain</c> as a process of its own: the v3 recipe needs MKL's own kernels
    /// (<see cref="DefaultBackbone.Settings"/>), and this process may already run MKL's AVX-512 ones, which can only be
    /// chosen once per process (<see cref="MklCpuDispatch"/>). Its lines are printed as they come.
    /// </summary>
    private static void PretrainInOwnProcess(RunConfig config, CancellationToken cancellation)
    {
        using var process = Process.Start(Sweeps.SelfCommand.StartInfo(["pretrain", "--backbone", config.Backbone, "--device", config.Device]))!;
        var lastLines = new Queue<string>();
        void Print(string? line)
        {
            if (line is null) return;
            lock (lastLines)
            {
                Console.WriteLine(line);
                lastLines.Enqueue(line);
                if (lastLines.Count > 3) lastLines.Dequeue();
            }
        }
        process.OutputDataReceived += (_, e) => Print(e.Data);
        process.ErrorDataReceived += (_, e) => Print(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using (cancellation.Register(() => { try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } }))
            process.WaitForExit();
        cancellation.ThrowIfCancellationRequested();
        if (process.ExitCode != 0)
            throw new ContinualMoEException($"pretraining the default backbone failed (exit code {process.ExitCode}): {string.Join(" | ", lastLines)}");
    }
}
