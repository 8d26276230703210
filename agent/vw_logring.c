/*  vw_logring - see vw_logring.h. */
#include "vw_logring.h"
#include "vw_text.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t wall_ms;
    char *text;  //  NULL: empty slot
} s_line_t;

struct vw_logring_t {
    pthread_mutex_t lock;
    s_line_t *ring;
    size_t cap, next, used, line_max;
};

vw_logring_t *
vw_logring_new (size_t lines, size_t line_max)
{
    if (!lines || !line_max)
        return NULL;
    vw_logring_t *self = (vw_logring_t *) calloc (1, sizeof (vw_logring_t));
    if (!self || !(self->ring = (s_line_t *) calloc (lines, sizeof (s_line_t)))) {
        free (self);
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    self->cap = lines;
    self->line_max = line_max;
    return self;
}

void
vw_logring_destroy (vw_logring_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vw_logring_t *self = *self_p;
    for (size_t i = 0; i < self->cap; i++)
        free (self->ring[i].text);
    free (self->ring);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

void
vw_logring_add (vw_logring_t *self, int64_t wall_ms, const char *line, size_t size)
{
    if (!self || !line)
        return;
    if (size > self->line_max)
        size = self->line_max;
    char *text = (char *) malloc (size + 1);
    if (!text)
        return;
    memcpy (text, line, size);
    text[size] = 0;
    //  A cut can split a character: keep the JSON strings valid.
    vw_text_sanitize_output (text, size);
    pthread_mutex_lock (&self->lock);
    s_line_t *slot = &self->ring[self->next];
    free (slot->text);
    slot->text = text;
    slot->wall_ms = wall_ms;
    self->next = (self->next + 1) % self->cap;
    if (self->used < self->cap)
        self->used++;
    pthread_mutex_unlock (&self->lock);
}

json_t *
vw_logring_collect (vw_logring_t *self, int64_t since_ms, size_t lines)
{
    json_t *array = json_array ();
    if (!self || !array)
        return array;
    pthread_mutex_lock (&self->lock);
    //  Walk back from the newest to find the first line to return.
    size_t take = 0;
    while (take < self->used && take < lines) {
        const s_line_t *line = &self->ring[(self->next + self->cap - 1 - take) % self->cap];
        if (line->wall_ms < since_ms)
            break;
        take++;
    }
    for (size_t i = take; i > 0; i--) {
        const s_line_t *line = &self->ring[(self->next + self->cap - i) % self->cap];
        if (json_array_append_new (array, json_string (line->text))) {
            json_decref (array);
            array = NULL;
            break;
        }
    }
    pthread_mutex_unlock (&self->lock);
    return array;
}
