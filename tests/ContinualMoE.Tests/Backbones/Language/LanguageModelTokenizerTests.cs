using System.Text.Json;
using ContinualMoE.Backbones.Language;
using ContinualMoE.Tests.Checkpoints;

namespace ContinualMoE.Tests.Backbones.Language;

/// <summary>
/// Tokenizer files in the real formats (tools/make_tokenizer_fixtures.py): ids must equal those of the generator's own
/// byte-level BPE encoder or of the sentencepiece library, and decoding must give the text back.
/// </summary>
public class LanguageModelTokenizerTests
{
    private static readonly string Root = Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers");

    public static TheoryData<string, string, int[]> Cases()
    {
        var data = new TheoryData<string, string, int[]>();
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, "expected.json")));
        foreach (var folder in document.RootElement.EnumerateObject())
            foreach (var item in folder.Value.EnumerateArray())
                data.Add(folder.Name, item.GetProperty("text").GetString()!, item.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()).ToArray());
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void IdsMatchTheIndependentEncoderAndDecodeRoundTrips(string folder, string text, int[] expected)
    {
        var tokenizer = LanguageModelTokenizer.Load(Path.Combine(Root, folder));
        Assert.Equal(expected, tokenizer.Encode(text, addBos: false));
        Assert.Equal(text, tokenizer.Decode(expected));
    }

    [Fact]
    public void FormatsSpecialTokensAndChatTemplatesAreRecognised()
    {
        var gpt2 = LanguageModelTokenizer.Load(Path.Combine(Root, "gpt2_vocab_merges"));
        Assert.StartsWith("vocab.json + merges.txt", gpt2.Kind);
        Assert.Equal(gpt2.SpecialTokens["<|endoftext|>"], gpt2.EosId);
        Assert.False(gpt2.AddsBosByDefault);

        var qwen = LanguageModelTokenizer.Load(Path.Combine(Root, "qwen_tokenizer_json"));
        Assert.StartsWith("tokenizer.json", qwen.Kind);
        Assert.Equal(qwen.SpecialTokens["<|im_end|>"], qwen.EosId);
        Assert.Contains("<|im_start|>", qwen.ChatTemplateText);
        Assert.Equal([qwen.SpecialTokens["<|im_start|>"]], qwen.Encode("<|im_start|>"));

        var llama = LanguageModelTokenizer.Load(Path.Combine(Root, "sentencepiece"));
        Assert.Equal("SentencePiece tokenizer.model", llama.Kind);
        Assert.Equal(1, llama.BosId);
        Assert.Equal(2, llama.EosId);
        Assert.True(llama.AddsBosByDefault);
        var ids = llama.Encode("hello world");
        Assert.Equal(1, ids[0]);
        Assert.Equal(llama.Encode("hello world", addBos: false), ids.Skip(1));
    }

    [Fact]
    public void MissingOrUnsupportedFilesGiveOneLineErrorsNamingTheFile()
    {
        using var temp = new TempDirectory();
        var empty = Assert.Throws<ContinualMoEException>(() => LanguageModelTokenizer.Load(temp.Path));
        Assert.Contains("no tokenizer.json, tokenizer.model or vocab.json", empty.Message);

        File.WriteAllText(temp.File("vocab.json"), "{\"a\": 0}");
        var noMerges = Assert.Throws<ContinualMoEException>(() => LanguageModelTokenizer.Load(temp.Path));
        Assert.Contains("merges.txt", noMerges.Message);

        File.WriteAllText(temp.File("tokenizer.json"), "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
        var wordPiece = Assert.Throws<ContinualMoEException>(() => LanguageModelTokenizer.Load(temp.Path));
        Assert.Contains("tokenizer.json", wordPiece.Message);
        Assert.Contains("'WordPiece' is not supported", wordPiece.Message);
        Assert.DoesNotContain('\n', wordPiece.Message);
    }
}
