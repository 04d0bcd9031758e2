using ContinualMoE.Backbones;

namespace ContinualMoE.LowRank;

/// <summary>
/// Which frozen linear layers get low-rank experts, by the backbone-independent names of <see cref="LinearLayers"/>.
/// Settings name them as a list: "q", "k", "v", "out", "mlp.in", "mlp.gate", "mlp.out", or the groups "qv" (LoRA's
/// default, Hu et al. 2021 sec. 7.1), "qkv", "attn" (q, k, v and out), "mlp" and "all".
/// </summary>
public static class LowRankSites
{
    public static IReadOnlyList<string> LayerNames(IEnumerable<string> requested, string method)
    {
        var layers = new List<string>();
        foreach (var raw in requested)
        {
            var name = raw.Trim().ToLowerInvariant();
            string[] expanded = name switch
            {
                "q" or "attn.q" => [LinearLayers.Query],
                "k" or "attn.k" => [LinearLayers.Key],
                "v" or "attn.v" => [LinearLayers.Value],
                "out" or "proj" or "attn.out" => [LinearLayers.Output],
                "mlp.in" or "fc1" => [LinearLayers.MlpIn],
                "mlp.gate" => [LinearLayers.MlpGate],
                "mlp.out" or "fc2" => [LinearLayers.MlpOut],
                "qv" => [LinearLayers.Query, LinearLayers.Value],
                "qkv" => [LinearLayers.Query, LinearLayers.Key, LinearLayers.Value],
                "attn" => [LinearLayers.Query, LinearLayers.Key, LinearLayers.Value, LinearLayers.Output],
                "mlp" => [LinearLayers.MlpIn, LinearLayers.MlpGate, LinearLayers.MlpOut],
                "all" => [.. LinearLayers.All],
                _ => throw new ContinualMoEException($"{method}: unknown layer '{raw}' in the setting 'layers'; use q, k, v, out, mlp.in, mlp.gate, mlp.out, qv, qkv, attn, mlp or all"),
            };
            foreach (var layer in expanded) if (!layers.Contains(layer)) layers.Add(layer);
        }
        return layers;
    }

    /// <summary>The backbone's adaptable layers that match <paramref name="layers"/> and <paramref name="blocks"/>
    /// (null: every block), in the backbone's order. None matching is an error naming the method.</summary>
    public static IReadOnlyList<LinearLayerShape> Select(ITransformerBackbone backbone, IEnumerable<string> layers,
        IEnumerable<int>? blocks, string method)
    {
        var names = LayerNames(layers, method);
        var blockSet = blocks?.ToHashSet();
        var selected = backbone.AdaptableLayers
            .Where(l => names.Contains(l.Site.Layer) && (blockSet is null || blockSet.Contains(l.Site.Block)))
            .ToList();
        if (selected.Count == 0)
            throw new ContinualMoEException($"{method}: none of the layers [{string.Join(", ", names)}] exists in the chosen blocks of {backbone.Name}");
        return selected;
    }

    /// <summary>The input a layer reads inside its block: q, k and v read the same normalised residual stream, and so do
    /// the MLP's in and gate layers, in every transformer the hook supports. Methods that collect statistics of a
    /// layer's input (InfLoRA's input subspaces) keep one per shared input instead of one per layer.</summary>
    public static string InputOf(string layer) => layer switch
    {
        LinearLayers.Query or LinearLayers.Key or LinearLayers.Value => "attn.in",
        LinearLayers.MlpIn or LinearLayers.MlpGate => "mlp.in",
        _ => layer,
    };

    /// <summary>For each site its input group (sites of one block that read the same input share a group, numbered in
    /// order of first appearance), and for each group the first site that reads it.</summary>
    public static (int[] GroupOfSite, int[] FirstSiteOfGroup) SharedInputs(IReadOnlyList<LinearLayerShape> sites)
    {
        var groups = new Dictionary<(int, string), int>();
        var first = new List<int>();
        var groupOfSite = new int[sites.Count];
        for (var s = 0; s < sites.Count; s++)
        {
            var key = (sites[s].Site.Block, InputOf(sites[s].Site.Layer));
            if (!groups.TryGetValue(key, out var g))
            {
                groups[key] = g = first.Count;
                first.Add(s);
            }
            groupOfSite[s] = g;
        }
        return (groupOfSite, first.ToArray());
    }
}
