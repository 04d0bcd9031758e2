using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace ContinualMoE.Backbones.Language;

/// <summary>
/// The tokenizer of a Hugging Face model folder, built with Microsoft.ML.Tokenizers (no hand-written BPE):
/// tokenizer.json with a byte-level BPE model (GPT-2, Qwen2, LLaMA-3 style; its Split regex is used as pre-tokenizer),
/// SentencePiece tokenizer.model (LLaMA-2), or vocab.json + merges.txt (GPT-2). Special tokens come from tokenizer.json's
/// added_tokens and tokenizer_config.json; bos/eos ids and the chat template from tokenizer_config.json when present.
/// </summary>
public sealed class LanguageModelTokenizer
{
    /// <summary>transformers' GPT-2 pre-tokenization (ByteLevel with use_regex).</summary>
    internal const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly Tokenizer tokenizer;

    /// <summary>Which files were used, e.g. "tokenizer.json (byte-level BPE)".</summary>
    public string Kind { get; }
    public IReadOnlyDictionary<string, int> SpecialTokens { get; }
    public int? BosId { get; }
    public int? EosId { get; }
    /// <summary>tokenizer_config.json's Jinja chat template, unrendered (null when the folder has none).</summary>
    public string? ChatTemplateText { get; }
    /// <summary>Whether the model expects a BOS token before the text (SentencePiece LLaMA tokenizers).</summary>
    public bool AddsBosByDefault { get; }

    private readonly TokenizerConfig config;
    private Language.ChatTemplate? parsedTemplate;

    private LanguageModelTokenizer(Tokenizer tokenizer, string kind, IReadOnlyDictionary<string, int> specials, int? bos, int? eos,
        TokenizerConfig config, bool addsBos)
    {
        this.tokenizer = tokenizer;
        this.config = config;
        Kind = kind;
        SpecialTokens = specials;
        BosId = bos;
        EosId = eos;
        ChatTemplateText = config.ChatTemplate;
        AddsBosByDefault = addsBos;
    }

    /// <summary>
    /// The prompt text of a conversation in the model's chat format (tokenizer_config.json's chat_template, or
    /// chat_template.jinja), ending with the assistant's turn opener when <paramref name="addGenerationPrompt"/>.
    /// Encode it with <c>addBos: false</c> when the template writes the BOS token itself.
    /// </summary>
    public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        if (config.ChatTemplate is null)
            throw ContinualMoEException.ForFile(config.Path, "has no chat_template, so the model has no chat format");
        parsedTemplate ??= Language.ChatTemplate.Parse(config.ChatTemplate, config.TemplatePath);
        return parsedTemplate.Render(messages, addGenerationPrompt,
            new Dictionary<string, string?> { ["bos_token"] = config.BosToken ?? "", ["eos_token"] = config.EosToken ?? "" });
    }

    /// <summary>Ids of <paramref name="text"/>; special-token strings in the text become their ids. A BOS id is
    /// prepended when <paramref name="addBos"/> (default: what the tokenizer type does) and the tokenizer has one.</summary>
    public IReadOnlyList<int> Encode(string text, bool? addBos = null)
    {
        var ids = tokenizer.EncodeToIds(text);
        if ((addBos ?? AddsBosByDefault) && BosId is int bos) return [bos, .. ids];
        return ids;
    }

    public string Decode(IEnumerable<int> ids) => tokenizer.Decode(ids) ?? "";

    /// <summary>Finds the tokenizer files of <paramref name="folder"/>; one-line errors name the file.</summary>
    public static LanguageModelTokenizer Load(string folder)
    {
        if (!Directory.Exists(folder)) throw ContinualMoEException.ForFile(folder, "tokenizer folder not found");
        var config = TokenizerConfig.Read(Path.Combine(folder, "tokenizer_config.json"));
        var tokenizerJson = Path.Combine(folder, "tokenizer.json");
        var sentencePiece = Path.Combine(folder, "tokenizer.model");
        var vocab = Path.Combine(folder, "vocab.json");
        var merges = Path.Combine(folder, "merges.txt");

        if (File.Exists(tokenizerJson))
        {
            var result = FromTokenizerJson(tokenizerJson, config, sentencePieceFallback: File.Exists(sentencePiece) ? sentencePiece : null);
            if (result is not null) return result;
        }
        if (File.Exists(sentencePiece)) return FromSentencePiece(sentencePiece, config);
        if (File.Exists(vocab) && File.Exists(merges)) return FromVocabAndMerges(vocab, merges, config);
        if (File.Exists(vocab)) throw ContinualMoEException.ForFile(merges, "missing (vocab.json needs merges.txt beside it)");
        throw ContinualMoEException.ForFile(folder, "no tokenizer.json, tokenizer.model or vocab.json + merges.txt in the folder");
    }

    private static LanguageModelTokenizer? FromTokenizerJson(string path, TokenizerConfig config, string? sentencePieceFallback)
    {
        using var document = ParseJson(path);
        var root = document.RootElement;
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw ContinualMoEException.ForFile(path, "no \"model\" object");
        var type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        var byteLevel = ContainsType(root.GetPropertyOrNull("pre_tokenizer"), "ByteLevel") || ContainsType(root.GetPropertyOrNull("decoder"), "ByteLevel");
        if (type != "BPE" || !byteLevel)
        {
            // SentencePiece-style BPE (metaspace, byte fallback) is read from the .model file the folder usually also has.
            if (sentencePieceFallback is not null) return null;
            throw ContinualMoEException.ForFile(path,
                $"tokenizer type '{type ?? "none"}'{(type == "BPE" ? " without byte-level pre-tokenization" : "")} is not supported " +
                "(supported: byte-level BPE tokenizer.json, SentencePiece tokenizer.model, vocab.json + merges.txt)");
        }

        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        if (!model.TryGetProperty("vocab", out var vocabElement) || vocabElement.ValueKind != JsonValueKind.Object)
            throw ContinualMoEException.ForFile(path, "BPE model has no \"vocab\" object");
        foreach (var item in vocabElement.EnumerateObject())
            vocabulary[item.Name] = item.Value.TryGetInt32(out var id) ? id : throw ContinualMoEException.ForFile(path, $"vocab id of '{item.Name}' is not an integer");
        var mergeList = new List<string>();
        if (model.TryGetProperty("merges", out var mergesElement) && mergesElement.ValueKind == JsonValueKind.Array)
        {
            foreach (var merge in mergesElement.EnumerateArray())
            {
                // Older files store "a b", newer ones ["a", "b"].
                mergeList.Add(merge.ValueKind == JsonValueKind.Array ? $"{merge[0].GetString()} {merge[1].GetString()}" : merge.GetString()!);
            }
        }

        var specials = new Dictionary<string, int>(config.AddedTokens, StringComparer.Ordinal);
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
            foreach (var token in added.EnumerateArray())
                specials[token.GetProperty("content").GetString()!] = token.GetProperty("id").GetInt32();
        var pattern = (root.GetPropertyOrNull("pre_tokenizer") is { } pre ? FindSplitPattern(pre) : null) ?? Gpt2Pattern;
        return ByteLevelBpe(path, "tokenizer.json (byte-level BPE)", vocabulary, mergeList, specials, pattern, config);
    }

    private static LanguageModelTokenizer FromVocabAndMerges(string vocabPath, string mergesPath, TokenizerConfig config)
    {
        Dictionary<string, int> vocabulary;
        try
        {
            vocabulary = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(vocabPath))
                         ?? throw ContinualMoEException.ForFile(vocabPath, "empty vocabulary");
        }
        catch (JsonException e)
        {
            throw ContinualMoEException.ForFile(vocabPath, $"not a JSON object of token ids: {e.Message}", e);
        }
        var merges = File.ReadLines(mergesPath).Where(l => l.Length > 0 && !l.StartsWith("#version", StringComparison.Ordinal)).ToList();
        var specials = new Dictionary<string, int>(config.AddedTokens, StringComparer.Ordinal);
        // transformers' GPT2Tokenizer makes <|endoftext|> its bos/eos/unk token, hence special, unless configured otherwise.
        foreach (var name in config.NamedTokens.DefaultIfEmpty("<|endoftext|>"))
            if (vocabulary.TryGetValue(name, out var id)) specials[name] = id;
        return ByteLevelBpe(mergesPath, "vocab.json + merges.txt (byte-level BPE)", vocabulary, merges, specials, Gpt2Pattern, config);
    }

    private static LanguageModelTokenizer ByteLevelBpe(string path, string kind, Dictionary<string, int> vocabulary, List<string> merges,
        Dictionary<string, int> specials, string pattern, TokenizerConfig config)
    {
        foreach (var (token, id) in specials) vocabulary.TryAdd(token, id);
        Tokenizer tokenizer;
        try
        {
            tokenizer = BpeTokenizer.Create(new BpeOptions(vocabulary)
            {
                Merges = merges,
                ByteLevel = true,
                SpecialTokens = specials,
                PreTokenizer = new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), specials),
            });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or KeyNotFoundException)
        {
            throw ContinualMoEException.ForFile(path, $"cannot build the BPE tokenizer: {e.Message}", e);
        }
        return new LanguageModelTokenizer(tokenizer, kind, specials, config.IdOf(config.BosToken, specials, vocabulary),
            config.IdOf(config.EosToken, specials, vocabulary) ?? (specials.TryGetValue("<|endoftext|>", out var end) ? end : null),
            config, addsBos: false);
    }

    private static LanguageModelTokenizer FromSentencePiece(string path, TokenizerConfig config)
    {
        SentencePieceTokenizer tokenizer;
        try
        {
            using var stream = File.OpenRead(path);
            tokenizer = SentencePieceTokenizer.Create(stream, false, false,
                config.AddedTokens.Count > 0 ? config.AddedTokens : null);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or NotSupportedException or IOException
                                       or Google.Protobuf.InvalidProtocolBufferException)
        {
            throw ContinualMoEException.ForFile(path, $"not a SentencePiece model the tokenizer library can read: {e.Message}", e);
        }
        return new LanguageModelTokenizer(tokenizer, "SentencePiece tokenizer.model", config.AddedTokens,
            tokenizer.BeginningOfSentenceId, tokenizer.EndOfSentenceId, config, addsBos: config.AddBosToken ?? true);
    }

    private static JsonDocument ParseJson(string path)
    {
        try
        {
            return JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw ContinualMoEException.ForFile(path, $"not valid JSON: {e.Message}", e);
        }
    }

    private static bool ContainsType(JsonElement? element, string type)
    {
        if (element is not { } e) return false;
        if (e.ValueKind == JsonValueKind.Object)
            return (e.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == type)
                   || e.EnumerateObject().Any(p => ContainsType(p.Value, type));
        return e.ValueKind == JsonValueKind.Array && e.EnumerateArray().Any(item => ContainsType(item, type));
    }

    /// <summary>The regex of a Split pre-tokenizer (Qwen2, LLaMA-3), searched through Sequence pre-tokenizers.</summary>
    private static string? FindSplitPattern(JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Object)
        {
            if (element.TryGetProperty("type", out var t) && t.GetString() == "Split" &&
                element.TryGetProperty("pattern", out var p) && p.TryGetProperty("Regex", out var regex))
                return regex.GetString();
            foreach (var property in element.EnumerateObject())
                if (FindSplitPattern(property.Value) is { } found) return found;
        }
        else if (element.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in element.EnumerateArray())
                if (FindSplitPattern(item) is { } found) return found;
        }
        return null;
    }

    /// <summary>tokenizer_config.json: named special tokens, added tokens, add_bos_token and the chat template.</summary>
    private sealed class TokenizerConfig
    {
        public string? BosToken { get; private init; }
        public string? EosToken { get; private init; }
        public IReadOnlyList<string> NamedTokens { get; private init; } = [];
        public Dictionary<string, int> AddedTokens { get; } = new(StringComparer.Ordinal);
        public bool? AddBosToken { get; private init; }
        public string? ChatTemplate { get; private init; }

        public int? IdOf(string? token, IReadOnlyDictionary<string, int> specials, IReadOnlyDictionary<string, int> vocabulary) =>
            token is null ? null : specials.TryGetValue(token, out var s) ? s : vocabulary.TryGetValue(token, out var v) ? v : null;

        public string Path { get; private init; } = "";
        /// <summary>The file the chat template came from (tokenizer_config.json or chat_template.jinja).</summary>
        public string TemplatePath { get; private init; } = "";

        public static TokenizerConfig Read(string path)
        {
            // Newer transformers versions save the template as its own file.
            var jinja = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(path)!, "chat_template.jinja");
            var jinjaTemplate = File.Exists(jinja) ? File.ReadAllText(jinja) : null;
            if (!File.Exists(path))
                return new TokenizerConfig { Path = path, ChatTemplate = jinjaTemplate, TemplatePath = jinjaTemplate is null ? path : jinja };
            using var document = ParseJson(path);
            var root = document.RootElement;
            // Token fields are either strings or {"content": ...} objects.
            string? Token(string key) => root.TryGetProperty(key, out var v)
                ? v.ValueKind == JsonValueKind.String ? v.GetString()
                : v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) ? c.GetString() : null
                : null;
            var config = new TokenizerConfig
            {
                BosToken = Token("bos_token"),
                EosToken = Token("eos_token"),
                NamedTokens = new[] { "bos_token", "eos_token", "unk_token", "pad_token" }.Select(Token).OfType<string>().Distinct().ToList(),
                AddBosToken = root.TryGetProperty("add_bos_token", out var add) && add.ValueKind is JsonValueKind.True or JsonValueKind.False ? add.GetBoolean() : null,
                ChatTemplate = jinjaTemplate ?? ReadTemplate(root, path),
                Path = path,
                TemplatePath = jinjaTemplate is null ? path : jinja,
            };
            if (root.TryGetProperty("added_tokens_decoder", out var decoder) && decoder.ValueKind == JsonValueKind.Object)
                foreach (var item in decoder.EnumerateObject())
                    if (int.TryParse(item.Name, out var id) && item.Value.TryGetProperty("content", out var content))
                        config.AddedTokens[content.GetString()!] = id;
            return config;
        }

        /// <summary>A string, or a list of {"name", "template"} of which "default" is used.</summary>
        private static string? ReadTemplate(JsonElement root, string path)
        {
            if (!root.TryGetProperty("chat_template", out var chat)) return null;
            if (chat.ValueKind == JsonValueKind.String) return chat.GetString();
            if (chat.ValueKind == JsonValueKind.Array)
                foreach (var item in chat.EnumerateArray())
                    if (item.TryGetProperty("name", out var name) && name.GetString() == "default" && item.TryGetProperty("template", out var template))
                        return template.GetString();
            if (chat.ValueKind == JsonValueKind.Null) return null;
            throw ContinualMoEException.ForFile(path, "chat_template is neither a string nor a list with a \"default\" template");
        }
    }
}

internal static class JsonElementExtensions
{
    public static JsonElement? GetPropertyOrNull(this JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) ? value : null;
}
