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
        PretrainCommand.PretrainAndSave(config.Backbone, DefaultBackbone.UpstreamData(Backbones.VitRegistry.Get(config.Backbone).ImageSize).Upstream,
            DefaultBackbone.Settings, path, config.Device, cancellation);
        return path;
    }
}
