using System.Text.Json;
using static TorchSharp.torch;

namespace ContinualMoE.Checkpoints;

/// <summary>
/// What a checkpoint says about its ViT's geometry. The tensors (timm names) determine the patch size, width, depth,
/// patch grid, MLP width, input channels and head size; the number of attention heads is not in timm or transformers
/// tensors (only Google's JAX layout keeps a heads axis) and the LayerNorm eps is in no tensor. A transformers
/// <c>config.json</c> adds both, and the image size. Null means "not known from this checkpoint".
/// </summary>
public sealed record CheckpointGeometry
{
    public int? PatchSize { get; init; }
    public int? Width { get; init; }
    public int? Depth { get; init; }
    /// <summary>Side of the square patch grid of <c>pos_embed</c> (the image size the weights were trained at / patch).</summary>
    public int? Grid { get; init; }
    public int? MlpWidth { get; init; }
    public int? InChannels { get; init; }
    /// <summary>Rows of the classifier head, if the file has one.</summary>
    public int? ClassCount { get; init; }
    public int? Heads { get; init; }
    public int? ImageSize { get; init; }
    public double? LayerNormEps { get; init; }
    /// <summary>Where <see cref="Heads"/>, <see cref="ImageSize"/> and <see cref="LayerNormEps"/> came from, for messages.</summary>
    public string? ConfigSource { get; init; }

    /// <summary>Reads the geometry off timm-named tensors; <paramref name="heads"/> when the layout recorded it (JAX).</summary>
    public static CheckpointGeometry FromTensors(IReadOnlyDictionary<string, Tensor> tensors, int? heads, string path)
    {
        long[]? Shape(string name) => tensors.TryGetValue(name, out var t) ? t.shape : null;
        var geometry = new CheckpointGeometry { Heads = heads is > 0 ? heads : null, ConfigSource = heads is > 0 ? path : null };
        if (Shape("patch_embed.proj.weight") is { Length: 4 } patch)
            geometry = geometry with { Width = (int)patch[0], InChannels = (int)patch[1], PatchSize = (int)patch[2] };
        var depth = TimmVitNames.CountBlocks(tensors.Keys);
        if (depth > 0) geometry = geometry with { Depth = depth };
        if (Shape("blocks.0.mlp.fc1.weight") is { Length: 2 } fc1) geometry = geometry with { MlpWidth = (int)fc1[0] };
        if (Shape("pos_embed") is { Length: 3 } pos)
        {
            var positions = pos[1] - 1;
            var grid = (int)Math.Round(Math.Sqrt(positions));
            if (grid * grid != positions)
                throw ContinualMoEException.ForFile(path, $"pos_embed has {positions} patch positions, not a square grid (only square-image ViTs are supported)");
            geometry = geometry with { Grid = grid };
        }
        if (Shape("head.weight") is { Length: 2 } head) geometry = geometry with { ClassCount = (int)head[0] };
        return geometry;
    }

    /// <summary>
    /// Adds a transformers <c>ViTConfig</c> (config.json: hidden_size, num_hidden_layers, num_attention_heads,
    /// intermediate_size, image_size, patch_size, num_channels, layer_norm_eps). A value the tensors contradict is an error.
    /// </summary>
    public CheckpointGeometry WithTransformersConfig(string configPath)
    {
        JsonElement root;
        try { root = JsonDocument.Parse(File.ReadAllText(configPath)).RootElement; }
        catch (Exception error) when (error is JsonException or IOException)
        {
            throw ContinualMoEException.ForFile(configPath, $"cannot read transformers config: {error.Message}", error);
        }
        if (root.ValueKind != JsonValueKind.Object) throw ContinualMoEException.ForFile(configPath, "transformers config is not a JSON object");

        int? Int(string key)
        {
            if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) && i > 0) return i;
            if (v.ValueKind == JsonValueKind.Array) // image_size / patch_size may be [h, w]
            {
                var items = v.EnumerateArray().Select(e => e.TryGetInt32(out var x) ? x : -1).Distinct().ToList();
                if (items.Count == 1 && items[0] > 0) return items[0];
                throw ContinualMoEException.ForFile(configPath, $"{key} {v} is not square (only square-image ViTs are supported)");
            }
            throw ContinualMoEException.ForFile(configPath, $"{key} is {v}, expected a positive integer");
        }
        int? Check(string key, int? fromTensors, string what)
        {
            var value = Int(key);
            if (value is int v && fromTensors is int t && v != t)
                throw ContinualMoEException.ForFile(configPath, $"{key} is {v} but the weights have {what} {t}");
            return value ?? fromTensors;
        }

        double? eps = null;
        if (root.TryGetProperty("layer_norm_eps", out var e) && e.ValueKind == JsonValueKind.Number) eps = e.GetDouble();
        var patch = Check("patch_size", PatchSize, "patch size");
        var image = Int("image_size");
        if (image is int im && patch is int p && Grid is int g && im != g * p)
            throw ContinualMoEException.ForFile(configPath, $"image_size is {im} but the weights' position grid is {g}x{g} patches of {p} ({g * p} px)");
        return this with
        {
            Width = Check("hidden_size", Width, "width"),
            Depth = Check("num_hidden_layers", Depth, "depth"),
            MlpWidth = Check("intermediate_size", MlpWidth, "MLP width"),
            InChannels = Check("num_channels", InChannels, "input channels"),
            PatchSize = patch,
            ImageSize = image ?? ImageSize,
            Heads = Int("num_attention_heads") ?? Heads,
            LayerNormEps = eps ?? LayerNormEps,
            ConfigSource = configPath,
        };
    }
}
