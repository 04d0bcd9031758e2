using System.Globalization;
using ContinualMoE.Checkpoints;

namespace ContinualMoE.Backbones;

/// <summary>
/// What <c>--backbone</c> says: a registry name (<c>vit_base_patch16_224</c>, a timm pretrained tag allowed), or an
/// explicit geometry <c>vit:image=224,patch=16,width=768,depth=12,heads=12,mlp-ratio=4,eps=1e-6</c> where every
/// setting left out is taken from the weights (plain <c>vit</c>: all of it), or a registry name with overrides
/// (<c>vit_base_patch16_224:eps=1e-12</c>). The tensors determine patch, width, depth, grid (hence image size) and MLP
/// width; heads come from the setting, a transformers config.json or a JAX checkpoint; eps defaults to timm's 1e-6.
/// </summary>
public sealed class BackboneSpec
{
    public const string GeometryPrefix = "vit";

    /// <summary>The setting names, as written after <c>vit:</c>.</summary>
    public static readonly IReadOnlyList<string> Settings = ["image", "patch", "width", "depth", "heads", "mlp-ratio", "mlp-width", "eps", "channels"];

    private readonly Dictionary<string, double> _given;

    private BackboneSpec(string text, VitConfig? registered, Dictionary<string, double> given)
    {
        Text = text;
        Registered = registered;
        _given = given;
    }

    public string Text { get; }

    /// <summary>The registry config the text names, or null for <c>vit:</c> geometries.</summary>
    public VitConfig? Registered { get; }

    public static BackboneSpec Parse(string text)
    {
        var colon = text.IndexOf(':');
        var head = (colon < 0 ? text : text[..colon]).Trim();
        VitConfig? registered = head.Equals(GeometryPrefix, StringComparison.OrdinalIgnoreCase) ? null : VitRegistry.Get(head);
        var given = new Dictionary<string, double>(StringComparer.Ordinal);
        if (colon >= 0)
            foreach (var part in text[(colon + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var eq = part.IndexOf('=');
                var key = (eq < 0 ? part : part[..eq]).Trim().ToLowerInvariant().Replace('_', '-');
                if (key == "mlp") key = "mlp-ratio";
                if (!Settings.Contains(key))
                    throw new ContinualMoEException($"backbone '{text}': unknown setting '{key}'; settings: {string.Join(", ", Settings)}");
                if (eq < 0 || !double.TryParse(part[(eq + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value <= 0
                    || (key is not ("mlp-ratio" or "eps") && value != Math.Floor(value)))
                    throw new ContinualMoEException($"backbone '{text}': '{part}' needs a positive {(key is "mlp-ratio" or "eps" ? "number" : "integer")} (e.g. {key}=...)");
                given[key] = value;
            }
        return new BackboneSpec(text, registered, given);
    }

    private int? Given(string key) => _given.TryGetValue(key, out var v) ? (int)v : null;

    /// <summary>The config when no weights are loaded: every geometry setting must be given (or come from the registry).</summary>
    public VitConfig WithoutWeights()
    {
        if (Registered is { } r && _given.Count == 0) return r;
        var missing = new[] { "image", "patch", "width", "depth", "heads" }.Where(k => !_given.ContainsKey(k) && Registered is null).ToList();
        if (missing.Count > 0)
            throw new ContinualMoEException(
                $"backbone '{Text}' without weights needs image, patch, width, depth and heads; missing: {string.Join(", ", missing)} " +
                $"(e.g. --backbone vit:image=32,patch=4,width=128,depth=6,heads=4)");
        return Resolve(null, null);
    }

    /// <summary>
    /// The config for these weights: settings given here or by the registry name must agree with what the checkpoint
    /// determines; what is not given is taken from it. The image size may differ from the weights' (the position
    /// embedding is resampled).
    /// </summary>
    public VitConfig Resolve(CheckpointGeometry? weights, string? weightsPath)
    {
        var source = weightsPath ?? "";
        var byName = Registered is not null && !_given.Keys.Any(k => k is "patch" or "width" or "depth" or "mlp-ratio" or "mlp-width" or "channels");

        int Pick(string key, int? registryValue, int? fromWeights, string what)
        {
            var given = Given(key) ?? registryValue;
            if (given is int g && fromWeights is int w && g != w)
                throw ContinualMoEException.ForFile(source, byName && Given(key) is null
                    ? $"the weights have {what} {w} but backbone {Registered!.Name} has {g}; pass --backbone {GeometryPrefix} to take the geometry from the weights"
                    : $"the weights have {what} {w} but --backbone says {key}={g}; pass {key}={w} or leave {key} out to infer it");
            return given ?? fromWeights
                ?? throw new ContinualMoEException($"backbone '{Text}': {what} is not given and cannot be inferred without weights; pass {key}=N");
        }

        var patch = Pick("patch", Registered?.PatchSize, weights?.PatchSize, "patch size");
        var width = Pick("width", Registered?.EmbedDim, weights?.Width, "width");
        var depth = Pick("depth", Registered?.Depth, weights?.Depth, "depth");
        var channels = Pick("channels", Registered?.InChannels ?? (weights?.InChannels is null ? 3 : null), weights?.InChannels, "input channels");

        var mlpRatio = _given.TryGetValue("mlp-ratio", out var ratio) ? ratio : (double?)null;
        int? mlpGiven = Given("mlp-width") ?? (mlpRatio ?? Registered?.MlpRatio) switch { double m => (int)(width * m), _ => null };
        if (mlpGiven is null && weights?.MlpWidth is null) mlpGiven = width * 4; // timm's default ratio
        var mlpKey = _given.ContainsKey("mlp-width") ? "mlp-width" : "mlp-ratio";
        int? mlpFromWeights = weights?.MlpWidth;
        if (mlpGiven is int mg && mlpFromWeights is int mw && mg != mw)
            throw ContinualMoEException.ForFile(source, byName && !_given.ContainsKey(mlpKey)
                ? $"the weights have MLP width {mw} but backbone {Registered!.Name} has {mg}; pass --backbone {GeometryPrefix} to take the geometry from the weights"
                : $"the weights have MLP width {mw} but --backbone gives {mg}; pass mlp-width={mw} or leave {mlpKey} out to infer it");
        var mlpWidth = mlpGiven ?? mlpFromWeights!.Value;

        var heads = Given("heads") ?? weights?.Heads ?? Registered?.Heads;
        if (Given("heads") is int gh && weights?.Heads is int wh && gh != wh)
            throw ContinualMoEException.ForFile(weights.ConfigSource ?? source, $"says {wh} attention heads but --backbone says heads={gh}; pass heads={wh}");
        if (heads is null)
            throw ContinualMoEException.ForFile(source,
                $"the number of attention heads is not recorded in these weights (width {width}); pass it: --backbone {GeometryPrefix}:heads=N" +
                (width % 64 == 0 ? $" (timm uses width/64 = {width / 64})" : ""));

        var eps = _given.TryGetValue("eps", out var e) ? e : weights?.LayerNormEps ?? Registered?.LayerNormEps ?? 1e-6;
        if (_given.ContainsKey("eps") && weights?.LayerNormEps is double we && Math.Abs(we - e) > 1e-3 * we)
            throw ContinualMoEException.ForFile(weights.ConfigSource ?? source, $"says layer_norm_eps {we} but --backbone says eps={e}; pass eps={we} or leave eps out");

        var image = Given("image") ?? Registered?.ImageSize ?? weights?.ImageSize ?? (weights?.Grid * patch)
            ?? throw new ContinualMoEException($"backbone '{Text}': image size is not given and cannot be inferred without weights; pass image=N");
        var name = byName && _given.Count == 0
            ? Registered!.Name
            : FormattableString.Invariant(
                $"{GeometryPrefix}:image={image},patch={patch},width={width},depth={depth},heads={heads},mlp-width={mlpWidth},eps={eps:R}") +
              (channels != 3 ? $",channels={channels}" : "");
        return new VitConfig(name, image, patch, width, depth, heads.Value, (double)mlpWidth / width, channels,
            weights?.ClassCount ?? Registered?.ClassCount ?? 1000, eps, mlpWidth).Validated();
    }
}
