using System.Text.Json;

namespace ContinualMoE.Data.Text;

/// <summary>Reading the JSON, JSON-lines and CSV files of text benchmarks with one-line errors that name the file
/// (and, for line formats, the line).</summary>
internal static class TextFiles
{
    public static string RequireFile(string path, string what)
    {
        if (!File.Exists(path)) throw ContinualMoEException.ForFile(path, $"{what} not found");
        return path;
    }

    public static string RequireFolder(string path, string what)
    {
        if (!Directory.Exists(path)) throw ContinualMoEException.ForFile(path, $"{what} folder not found");
        return path;
    }

    /// <summary>The objects of a file that holds either one JSON array of objects, an object whose "instances" (any
    /// case) is that array, or JSON lines (one object a line; blank lines skipped). Hugging Face's <c>load_dataset("json")</c>,
    /// which TRACE uses, accepts both the array and the lines. Each object comes with its 1-based line number.</summary>
    public static List<(JsonElement Item, int Line)> ReadObjects(string path)
    {
        RequireFile(path, "file");
        var text = File.ReadAllText(path);
        var first = text.AsSpan().TrimStart();
        if (first.Length == 0) throw ContinualMoEException.ForFile(path, "file is empty");
        return first[0] == '[' || (first[0] == '{' && !LooksLikeJsonLines(text)) ? ReadDocument(path, text) : ReadLines(path, text);
    }

    /// <summary>A file that starts with '{' is JSON lines when its first line is a complete object on its own.</summary>
    private static bool LooksLikeJsonLines(string text)
    {
        var firstLine = text.TrimStart().Split('\n', 2)[0];
        try { using var _ = JsonDocument.Parse(firstLine); return true; }
        catch (JsonException) { return false; }
    }

    private static List<(JsonElement, int)> ReadDocument(string path, string text)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(text, new JsonDocumentOptions { AllowTrailingCommas = true }); }
        catch (JsonException e) { throw ContinualMoEException.ForFile(path, $"line {(e.LineNumber ?? 0) + 1}: malformed JSON ({FirstSentence(e.Message)})", e); }
        var root = document.RootElement;
        if (root.ValueKind == JsonValueKind.Object)
        {
            var instances = root.EnumerateObject().FirstOrDefault(p => p.Name.Equals("instances", StringComparison.OrdinalIgnoreCase));
            if (instances.Value.ValueKind != JsonValueKind.Array)
                throw ContinualMoEException.ForFile(path, "expected a JSON array of examples or an object with an \"instances\" array");
            root = instances.Value;
        }
        if (root.ValueKind != JsonValueKind.Array) throw ContinualMoEException.ForFile(path, "expected a JSON array of examples");
        // A JsonDocument does not keep positions: items are numbered instead (line 0 = unknown, see Where).
        var items = new List<(JsonElement, int)>();
        var index = 0;
        foreach (var item in root.EnumerateArray())
        {
            index++;
            if (item.ValueKind != JsonValueKind.Object) throw ContinualMoEException.ForFile(path, $"example {index} is not a JSON object");
            items.Add((item, -index));
        }
        return items;
    }

    private static List<(JsonElement, int)> ReadLines(string path, string text)
    {
        var items = new List<(JsonElement, int)>();
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0) continue;
            JsonElement item;
            try { using var document = JsonDocument.Parse(line); item = document.RootElement.Clone(); }
            catch (JsonException e) { throw ContinualMoEException.ForFile(path, $"line {i + 1}: malformed JSON ({FirstSentence(e.Message)})", e); }
            if (item.ValueKind != JsonValueKind.Object) throw ContinualMoEException.ForFile(path, $"line {i + 1}: expected a JSON object");
            items.Add((item, i + 1));
        }
        return items;
    }

    /// <summary>"line 12" for a JSON-lines item, "example 12" for the 12th item of a JSON array.</summary>
    public static string Where(int line) => line > 0 ? $"line {line}" : $"example {-line}";

    /// <summary>A string field; a missing or non-string required field is a one-line error naming file and line.</summary>
    public static string Field(string path, JsonElement item, int line, string name, bool required = true)
    {
        if (item.TryGetProperty(name, out var value))
        {
            if (value.ValueKind == JsonValueKind.String) return value.GetString()!;
            if (value.ValueKind is JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False) return value.GetRawText();
            if (value.ValueKind != JsonValueKind.Null)
                throw ContinualMoEException.ForFile(path, $"{Where(line)}: field \"{name}\" must be a string");
        }
        if (required) throw ContinualMoEException.ForFile(path, $"{Where(line)}: missing field \"{name}\"");
        return "";
    }

    /// <summary>A JSON array of strings (a labels.json).</summary>
    public static List<string> ReadStringArray(string path)
    {
        RequireFile(path, "labels file");
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(path));
            if (document.RootElement.ValueKind != JsonValueKind.Array || document.RootElement.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
                throw ContinualMoEException.ForFile(path, "expected a JSON array of label strings");
            var labels = document.RootElement.EnumerateArray().Select(e => e.GetString()!).ToList();
            if (labels.Count == 0) throw ContinualMoEException.ForFile(path, "the label list is empty");
            return labels;
        }
        catch (JsonException e) { throw ContinualMoEException.ForFile(path, $"line {(e.LineNumber ?? 0) + 1}: malformed JSON ({FirstSentence(e.Message)})", e); }
    }

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(". ", StringComparison.Ordinal);
        return (cut > 0 ? message[..cut] : message).TrimEnd('.');
    }

    /// <summary>Rows of an RFC 4180 CSV file (quoted fields may hold commas, doubled quotes and newlines), each with the
    /// 1-based line on which it starts. Zhang et al. (2015)'s files are in this form.</summary>
    public static IEnumerable<(List<string> Fields, int Line)> ReadCsv(string path)
    {
        RequireFile(path, "CSV file");
        using var reader = new StreamReader(path);
        var line = 1;
        var fields = new List<string>();
        var field = new System.Text.StringBuilder();
        var quoted = false;
        var rowStart = 1;
        var atFieldStart = true;
        int c;
        while ((c = reader.Read()) >= 0)
        {
            var ch = (char)c;
            if (quoted)
            {
                if (ch == '"')
                {
                    if (reader.Peek() == '"') { reader.Read(); field.Append('"'); }
                    else quoted = false;
                }
                else
                {
                    if (ch == '\n') line++;
                    field.Append(ch);
                }
                continue;
            }
            switch (ch)
            {
                case '"' when atFieldStart:
                    quoted = true;
                    atFieldStart = false;
                    break;
                case ',':
                    fields.Add(field.ToString());
                    field.Clear();
                    atFieldStart = true;
                    break;
                case '\r':
                    break;
                case '\n':
                    fields.Add(field.ToString());
                    field.Clear();
                    if (fields.Count > 1 || fields[0].Length > 0) yield return (fields, rowStart);
                    fields = [];
                    line++;
                    rowStart = line;
                    atFieldStart = true;
                    break;
                default:
                    field.Append(ch);
                    atFieldStart = false;
                    break;
            }
        }
        if (quoted) throw ContinualMoEException.ForFile(path, $"line {rowStart}: a quoted field is not closed before the end of the file");
        if (field.Length > 0 || fields.Count > 0)
        {
            fields.Add(field.ToString());
            yield return (fields, rowStart);
        }
    }
}
