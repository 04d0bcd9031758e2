using System.Text.Json;

namespace ContinualMoE.Backbones.Language;

/// <summary>The two decoder families this project runs: GPT-2 and the LLaMA/Qwen/Mistral family.</summary>
public enum DecoderFamily { Gpt2, Llama }

/// <summary>
/// Rotary position embedding settings (Su et al. 2021) as Hugging Face configs give them: rope_theta and rope_scaling
/// ("default", "linear" position interpolation, or Meta's "llama3" frequency-dependent scaling).
/// </summary>
public sealed record RopeSettings(double Theta, string ScalingType = "default", double Factor = 1,
    double LowFrequencyFactor = 1, double HighFrequencyFactor = 4, long OriginalMaxPositions = 8192);

/// <summary>
/// Geometry of a decoder-only language model, read from a Hugging Face config.json. Keys follow transformers'
/// GPT2Config (n_embd, n_layer, n_head, n_inner, n_positions, activation_function) and LlamaConfig/Qwen2Config
/// (hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size, rope_theta, ...).
/// </summary>
public sealed record DecoderConfig
{
    public required string ModelType { get; init; }
    public required DecoderFamily Family { get; init; }
    public required int VocabSize { get; init; }
    public required int Width { get; init; }
    public required int Depth { get; init; }
    public required int Heads { get; init; }
    public required int KeyValueHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int MlpHidden { get; init; }
    /// <summary>Longest sequence the model was built for (GPT-2: rows of wpe; LLaMA: informative only).</summary>
    public required int MaxPositions { get; init; }
    public required double NormEps { get; init; }
    /// <summary>"gelu_new" (tanh approximation, GPT-2), "gelu" (exact), "silu" (LLaMA SwiGLU gate).</summary>
    public required string Activation { get; init; }
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Biases on q/k/v (Qwen2 always; LLaMA when attention_bias).</summary>
    public bool QkvBias { get; init; }
    /// <summary>Bias on the attention output projection (LLaMA attention_bias).</summary>
    public bool OutputBias { get; init; }
    /// <summary>Biases on the MLP projections (LLaMA mlp_bias).</summary>
    public bool MlpBias { get; init; }
    public RopeSettings? Rope { get; init; }
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    /// <summary>torch_dtype of the config, e.g. "bfloat16"; informative.</summary>
    public string? StoredDType { get; init; }

    public static readonly IReadOnlyList<string> SupportedModelTypes = ["gpt2", "llama", "mistral", "qwen2"];

    /// <summary>Reads and checks config.json; every problem is a one-line error naming the file.</summary>
    public static DecoderConfig Read(string path)
    {
        if (!File.Exists(path)) throw ContinualMoEException.ForFile(path, "file not found (a Hugging Face model folder needs config.json)");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw ContinualMoEException.ForFile(path, $"not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw ContinualMoEException.ForFile(path, "config is not a JSON object");
            var json = new ConfigJson(root, path);
            var modelType = json.String("model_type")
                ?? throw ContinualMoEException.ForFile(path, "no \"model_type\" (expected one of " + string.Join(", ", SupportedModelTypes) + ")");
            var config = modelType switch
            {
                "gpt2" => ReadGpt2(json),
                "llama" or "mistral" or "qwen2" => ReadLlama(json, modelType),
                _ => throw ContinualMoEException.ForFile(path,
                    $"model_type '{modelType}' is not supported (supported: {string.Join(", ", SupportedModelTypes)})"),
            };
            return config.Validated(path);
        }
    }

    private static DecoderConfig ReadGpt2(ConfigJson json)
    {
        if (json.Bool("scale_attn_by_inverse_layer_idx") == true)
            throw json.Error("scale_attn_by_inverse_layer_idx is not supported");
        var width = json.RequiredInt("n_embd");
        var heads = json.RequiredInt("n_head");
        return new DecoderConfig
        {
            ModelType = "gpt2",
            Family = DecoderFamily.Gpt2,
            VocabSize = json.RequiredInt("vocab_size"),
            Width = width,
            Depth = json.RequiredInt("n_layer"),
            Heads = heads,
            KeyValueHeads = heads,
            HeadDim = heads > 0 ? width / heads : 0,
            MlpHidden = json.Int("n_inner") ?? 4 * width,
            MaxPositions = json.Int("n_positions") ?? json.RequiredInt("n_ctx"),
            NormEps = json.Double("layer_norm_epsilon") ?? 1e-5,
            Activation = json.String("activation_function") ?? "gelu_new",
            TieWordEmbeddings = json.Bool("tie_word_embeddings") ?? true,
            QkvBias = true,
            OutputBias = true,
            MlpBias = true,
            BosTokenId = json.Int("bos_token_id"),
            EosTokenIds = json.IntOrList("eos_token_id"),
            StoredDType = json.String("torch_dtype"),
        };
    }

    private static DecoderConfig ReadLlama(ConfigJson json, string modelType)
    {
        var width = json.RequiredInt("hidden_size");
        var heads = json.RequiredInt("num_attention_heads");
        var attentionBias = json.Bool("attention_bias") ?? false;
        return new DecoderConfig
        {
            ModelType = modelType,
            Family = DecoderFamily.Llama,
            VocabSize = json.RequiredInt("vocab_size"),
            Width = width,
            Depth = json.RequiredInt("num_hidden_layers"),
            Heads = heads,
            KeyValueHeads = json.Int("num_key_value_heads") ?? heads,
            HeadDim = json.Int("head_dim") ?? (heads > 0 ? width / heads : 0),
            MlpHidden = json.RequiredInt("intermediate_size"),
            MaxPositions = SlidingWindowLimit(json, modelType) ?? json.Int("max_position_embeddings") ?? 2048,
            NormEps = json.Double("rms_norm_eps") ?? 1e-6,
            Activation = json.String("hidden_act") ?? "silu",
            TieWordEmbeddings = json.Bool("tie_word_embeddings") ?? false,
            QkvBias = modelType == "qwen2" || attentionBias,
            OutputBias = attentionBias,
            MlpBias = json.Bool("mlp_bias") ?? false,
            Rope = ReadRope(json),
            BosTokenId = json.Int("bos_token_id"),
            EosTokenIds = json.IntOrList("eos_token_id"),
            StoredDType = json.String("torch_dtype"),
        };
    }

    /// <summary>Mistral/Qwen2 sliding-window attention equals full attention up to the window: we cap the length there
    /// instead of implementing the window.</summary>
    private static int? SlidingWindowLimit(ConfigJson json, string modelType)
    {
        var used = modelType == "mistral" || (json.Bool("use_sliding_window") ?? false);
        return used && json.Int("sliding_window") is int window && window < (json.Int("max_position_embeddings") ?? int.MaxValue) ? window : null;
    }

    private static RopeSettings ReadRope(ConfigJson json)
    {
        var theta = json.Double("rope_theta") ?? 10000.0;
        var scaling = json.Object("rope_scaling");
        if (scaling is null) return new RopeSettings(theta);
        var type = json.String("rope_type", scaling.Value) ?? json.String("type", scaling.Value) ?? "default";
        double Get(string key, double fallback) => json.Double(key, scaling.Value) ?? fallback;
        return type switch
        {
            "default" => new RopeSettings(theta),
            "linear" => new RopeSettings(theta, "linear", Get("factor", 1)),
            "llama3" => new RopeSettings(theta, "llama3", Get("factor", 8), Get("low_freq_factor", 1), Get("high_freq_factor", 4),
                (long)Get("original_max_position_embeddings", 8192)),
            _ => throw json.Error($"rope_scaling type '{type}' is not supported (supported: default, linear, llama3)"),
        };
    }

    private DecoderConfig Validated(string path)
    {
        void Check(bool ok, string problem) { if (!ok) throw ContinualMoEException.ForFile(path, problem); }
        Check(VocabSize > 0 && Width > 0 && Depth > 0 && Heads > 0 && MlpHidden > 0 && MaxPositions > 0,
            $"vocab size, width, depth, heads, MLP width and positions must be positive (got {VocabSize}, {Width}, {Depth}, {Heads}, {MlpHidden}, {MaxPositions})");
        Check(Family == DecoderFamily.Llama || Width % Heads == 0, $"width {Width} is not divisible by {Heads} heads");
        Check(KeyValueHeads > 0 && Heads % KeyValueHeads == 0, $"{Heads} attention heads are not a multiple of {KeyValueHeads} key/value heads");
        Check(HeadDim > 0 && HeadDim % 2 == 0 || Family == DecoderFamily.Gpt2, $"head_dim {HeadDim} must be even for rotary embeddings");
        var activations = Family == DecoderFamily.Gpt2 ? new[] { "gelu_new", "gelu_pytorch_tanh", "gelu" } : new[] { "silu", "swish" };
        Check(activations.Contains(Activation), $"activation '{Activation}' is not supported for {ModelType} (supported: {string.Join(", ", activations)})");
        Check(Rope is null || Rope.Theta > 0 && Rope.Factor > 0, "rope_theta and rope_scaling factor must be positive");
        return this;
    }

    /// <summary>Typed access to config.json values with one-line errors.</summary>
    private readonly struct ConfigJson(JsonElement root, string path)
    {
        public ContinualMoEException Error(string problem) => ContinualMoEException.ForFile(path, problem);

        private bool TryGet(string key, JsonElement? within, out JsonElement value)
        {
            var source = within ?? root;
            if (source.TryGetProperty(key, out value) && value.ValueKind != JsonValueKind.Null) return true;
            value = default;
            return false;
        }

        public int RequiredInt(string key) => Int(key) ?? throw Error($"missing \"{key}\"");

        public int? Int(string key, JsonElement? within = null)
        {
            if (!TryGet(key, within, out var v)) return null;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i)) return i;
            throw Error($"\"{key}\" must be an integer, got {v.GetRawText()}");
        }

        public double? Double(string key, JsonElement? within = null)
        {
            if (!TryGet(key, within, out var v)) return null;
            if (v.ValueKind == JsonValueKind.Number) return v.GetDouble();
            throw Error($"\"{key}\" must be a number, got {v.GetRawText()}");
        }

        public bool? Bool(string key)
        {
            if (!TryGet(key, null, out var v)) return null;
            return v.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw Error($"\"{key}\" must be true or false, got {v.GetRawText()}"),
            };
        }

        public string? String(string key, JsonElement? within = null)
        {
            if (!TryGet(key, within, out var v)) return null;
            return v.ValueKind == JsonValueKind.String ? v.GetString() : throw Error($"\"{key}\" must be a string, got {v.GetRawText()}");
        }

        public JsonElement? Object(string key)
        {
            if (!TryGet(key, null, out var v)) return null;
            return v.ValueKind == JsonValueKind.Object ? v : throw Error($"\"{key}\" must be an object, got {v.GetRawText()}");
        }

        public IReadOnlyList<int> IntOrList(string key)
        {
            if (!TryGet(key, null, out var v)) return [];
            if (v.ValueKind == JsonValueKind.Array)
            {
                var ids = new List<int>();
                foreach (var e in v.EnumerateArray())
                    ids.Add(e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var i) ? i : throw Error($"\"{key}\" must hold integers"));
                return ids;
            }
            return [Int(key)!.Value];
        }
    }
}
